"""`aigw ledger prune|check`, `aigw backup`, `aigw restore`: the state file over months."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from aigw import paths
from aigw.cli.common import console, iso, parse_since, print_json, when, with_db
from aigw.errors import AigwError

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.store.sqlite.db import Database

T = TypeVar("T")

app = typer.Typer(
    help="The cost ledger's upkeep: prune old raw rows, check the state file's integrity.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@app.command("prune")
def prune(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="Delete raw rows of the whole hours before this: a date (2026-01-01) or a "
            "duration back from now (90d). Hourly and daily totals are kept, so reports "
            "and budgets stay exact.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the rows that would go.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Delete raw ledger rows before a date (in small batches; safe while serving)."""
    from aigw.store.sqlite import maintenance
    from aigw.store.sqlite.rollups import HOUR, floor_to

    now = time.time()
    cut = floor_to(parse_since(before, now), HOUR)
    if cut > now:
        raise AigwError(f"--before {before} is in the future; nothing recent is pruned")

    async def run(db: Database) -> int:
        if dry_run:
            return await maintenance.count_rows_before(db, cut)
        return await maintenance.prune_rows(db, cut)

    n = with_db(run)
    if json:
        print_json({"before": iso(cut), "rows": n, "dry_run": dry_run})
    elif dry_run:
        console.print(f"would delete {n:,} ledger row(s) before {when(cut)} (rollups kept)")
    else:
        console.print(f"deleted {n:,} ledger row(s) before {when(cut)} (rollups kept)")


@app.command("check")
def check(
    sample: Annotated[
        int, typer.Option("--sample", min=0, help="Whole hours to verify against raw rows.")
    ] = 24,
    json: JsonOpt = False,
) -> None:
    """Integrity: PRAGMA quick_check, rollups against raw rows for a sample of hours,
    file size, row counts and requests per day. Exits 1 on a problem."""
    from aigw.store.sqlite import maintenance

    async def run(db: Database) -> maintenance.CheckResult:
        return await maintenance.check(db, sample_hours=sample)

    r = with_db(run)
    rows = max(1, r.rows["ledger"])
    per_row = (r.file_bytes + r.wal_bytes) / rows if r.rows["ledger"] else None
    out: dict[str, Any] = {
        "ok": r.ok,
        "quick_check": r.quick_check,
        "file_bytes": r.file_bytes,
        "wal_bytes": r.wal_bytes,
        "bytes_per_ledger_row": None if per_row is None else round(per_row, 1),
        "rows": r.rows,
        "raw_rows_since": iso(r.rows_before) if r.rows_before else None,
        "hours_checked": r.hours_checked,
        "mismatches": r.mismatches,
        "requests_per_day": [{"day": d, "requests": n} for d, n in r.per_day],
    }
    if json:
        print_json(out)
    else:
        table = Table(title="state file", show_header=False)
        table.add_row("integrity", "ok" if r.quick_check == ["ok"] else "; ".join(r.quick_check))
        table.add_row("size", f"{_mb(r.file_bytes)} (+ {_mb(r.wal_bytes)} WAL)")
        if per_row is not None:
            table.add_row("bytes per ledger row", f"{per_row:,.0f} (rollups included)")
        for name, n in r.rows.items():
            table.add_row(f"{name} rows", f"{n:,}")
        table.add_row("raw rows since", when(r.rows_before) if r.rows_before else "the start")
        table.add_row(
            "rollups checked",
            f"{r.hours_checked} hour(s): "
            + ("all match" if not r.mismatches else f"{len(r.mismatches)} mismatch(es)"),
        )
        console.print(table)
        for m in r.mismatches:
            console.print(f"[red]{m}[/]")
        if r.per_day:
            recent = r.per_day[-7:]
            avg = sum(n for _, n in recent) / len(recent)
            growth = f"{avg:,.0f} requests/day over the last {len(recent)} day(s)"
            if per_row is not None:
                growth += f", about {_mb(int(avg * per_row))}/day"
            console.print(f"growth: {growth}")
    if not r.ok:
        raise typer.Exit(1)


def backup(
    file: Annotated[Path, typer.Argument(help="The new backup file (must not exist).")],
    json: JsonOpt = False,
) -> None:
    """Copy the state file consistently while the server runs (SQLite VACUUM INTO)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from aigw.store.sqlite import maintenance

    state = paths.resolve().state_file
    if json:
        size = maintenance.backup(state, file)
    else:
        with Progress(
            TextColumn("backup"), BarColumn(), DownloadColumn(), console=console, transient=True
        ) as bar:
            task = bar.add_task("backup", total=None)

            def step(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            size = maintenance.backup(state, file, step)
    if json:
        print_json({"file": str(file), "bytes": size})
    else:
        console.print(f"backed up {state} to {file} ({_mb(size)})")


def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `aigw backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before replacing the state.")
    ] = False,
) -> None:
    """Replace the state file with a backup; refuses while a server uses the state."""
    from aigw.store.sqlite import maintenance

    state = paths.resolve().state_file
    info = maintenance.inspect(file)
    if not yes and not typer.confirm(
        f"Replace {state} with {file} ({info['ledger_rows']:,} ledger rows)?"
    ):
        raise typer.Exit(1)
    maintenance.restore(file, state)
    console.print(f"restored {state} from {file} ({info['ledger_rows']:,} ledger rows)")
