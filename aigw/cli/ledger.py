"""`aigw ledger prune|check`, `aigw backup`, `aigw restore`: the state over months, on
either backend (the SQLite state file, or PostgreSQL with ``[store] url``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from aigw import paths
from aigw.cli.common import console, err_console, iso, load_config, parse_since, print_json, when
from aigw.errors import AigwError

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.store.postgres.db import PgDatabase
    from aigw.store.sqlite.db import Database

T = TypeVar("T")

app = typer.Typer(
    help="The cost ledger's upkeep: prune old raw rows, check the state's integrity (SQLite or "
    "PostgreSQL).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _on_backend(
    sqlite: Callable[[Database], Awaitable[T]], postgres: Callable[[PgDatabase], Awaitable[T]]
) -> T:
    """Run ``sqlite`` on the state file, or ``postgres`` on the database [store] url
    names, and close what was opened."""
    import asyncio  # not at import: `aigw --help` never needs it

    cfg = load_config()

    async def run() -> T:
        if cfg.store.url:
            from aigw.store.postgres import open_postgres

            pg = await open_postgres(cfg.store.url, max_size=2)
            try:
                return await postgres(pg)
            finally:
                await pg.close()
        from aigw.store.sqlite.db import open_database

        db = await open_database(paths.resolve().state_file, synchronous=cfg.ledger.synchronous)
        try:
            return await sqlite(db)
        finally:
            await db.close()

    return asyncio.run(run())


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
    from aigw.store.sqlite.rollups import HOUR, floor_to

    now = time.time()
    cut = floor_to(parse_since(before, now), HOUR)
    if cut > now:
        raise AigwError(f"--before {before} is in the future; nothing recent is pruned")

    async def on_sqlite(db: Database) -> int:
        from aigw.store.sqlite import maintenance

        if dry_run:
            return await maintenance.count_rows_before(db, cut)
        return await maintenance.prune_rows(db, cut)

    async def on_postgres(db: PgDatabase) -> int:
        from aigw.store.postgres import maintenance
        from aigw.store.postgres.ledger import PgLedger

        if dry_run:
            return await maintenance.count_rows_before(db, cut)
        return await PgLedger(db).prune_rows(cut)

    n = _on_backend(on_sqlite, on_postgres)
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
    """Integrity, size, row counts and requests per day; exits 1 on a problem.

    Rollups are checked against raw rows for a sample of whole hours, and daily against
    hourly ones; SQLite adds PRAGMA quick_check, PostgreSQL the audit chain's head."""
    from aigw.store.sqlite.maintenance import CheckResult

    async def on_sqlite(db: Database) -> CheckResult:
        from aigw.store.sqlite import maintenance

        return await maintenance.check(db, sample_hours=sample)

    async def on_postgres(db: PgDatabase) -> CheckResult:
        from aigw.store.postgres import maintenance

        return await maintenance.check(db, sample_hours=sample)

    r = _on_backend(on_sqlite, on_postgres)
    rows = max(1, r.rows["ledger"])
    size = r.file_bytes + (r.wal_bytes or 0)
    per_row = size / rows if r.rows["ledger"] else None
    out: dict[str, Any] = {
        "ok": r.ok,
        "backend": r.backend,
        "quick_check": r.quick_check,
        "file_bytes": r.file_bytes,
        "wal_bytes": r.wal_bytes,
        "database_bytes": r.database_bytes,
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
        postgres = r.backend == "postgresql"
        table = Table(title="PostgreSQL store" if postgres else "state file", show_header=False)
        if r.quick_check is not None:
            integrity = "ok" if r.quick_check == ["ok"] else "; ".join(r.quick_check)
        else:
            integrity = "ok" if r.ok else f"{len(r.mismatches)} problem(s), below"
        table.add_row("integrity", integrity)
        if postgres:
            table.add_row(
                "size",
                f"{_mb(r.file_bytes)} in aigw's tables ({_mb(r.database_bytes or 0)} database)",
            )
        else:
            table.add_row("size", f"{_mb(r.file_bytes)} (+ {_mb(r.wal_bytes or 0)} WAL)")
        if per_row is not None:
            table.add_row("bytes per ledger row", f"{per_row:,.0f} (rollups included)")
        for name, n in r.rows.items():
            table.add_row(f"{name} rows", f"{n:,}")
        table.add_row("raw rows since", when(r.rows_before) if r.rows_before else "the start")
        rollups = [m for m in r.mismatches if m.startswith(("hour", "day"))]
        table.add_row(
            "rollups checked",
            f"{r.hours_checked} hour(s): "
            + ("all match" if not rollups else f"{len(rollups)} mismatch(es)"),
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


def _table_progress(
    tables: tuple[str, ...], *, quiet: bool
) -> tuple[Any, Callable[[str, int], None], Callable[[dict[str, int]], None]]:
    """A progress bar per table (on stderr; none with ``quiet``), its step function
    (table, rows done) and the function that sets the totals."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=quiet,
    )
    tasks = {t: bar.add_task(t, total=None) for t in tables}

    def sized(totals: dict[str, int]) -> None:
        for table, n in totals.items():
            bar.update(tasks[table], total=n)

    return bar, lambda table, n: bar.update(tasks[table], advance=n), sized


def backup(
    file: Annotated[Path, typer.Argument(help="The new backup file (must not exist).")],
    json: JsonOpt = False,
) -> None:
    """Copy the state consistently while the servers run: the state file, or PostgreSQL's
    state into a new state file (one snapshot).

    On SQLite, VACUUM INTO; on PostgreSQL, keys, teams, budget alerts, ledger, rollups and
    the audit trail are read in one snapshot into a new SQLite state file (the format a
    backup on SQLite has), which `aigw restore` takes on either backend."""
    cfg = load_config()
    if cfg.store.url:
        import asyncio

        from aigw.store.postgres import copy, open_postgres
        from aigw.store.postgres.db import redact

        async def run() -> int:
            db = await open_postgres(cfg.store.url, max_size=1)
            try:
                async with db.pool.acquire() as conn:
                    bar, step, sized = _table_progress(copy.TABLES, quiet=json)
                    with bar:
                        return await copy.backup(conn, file, step, sized)
            finally:
                await db.close()

        size = asyncio.run(run())
        source = redact(cfg.store.url)
    else:
        size = _backup_state_file(file, quiet=json)
        source = str(paths.resolve().state_file)
    if json:
        print_json({"file": str(file), "bytes": size, "from": source})
    else:
        console.print(f"backed up {source} to {file} ({_mb(size)})")


def _backup_state_file(file: Path, *, quiet: bool) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from aigw.store.sqlite import maintenance

    state = paths.resolve().state_file
    if quiet:
        return maintenance.backup(state, file)
    with Progress(
        TextColumn("backup"), BarColumn(), DownloadColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("backup", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return maintenance.backup(state, file, step)


def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `aigw backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before replacing the state.")
    ] = False,
) -> None:
    """Replace the state with a backup (on PostgreSQL in one transaction); refuses while a
    server uses the state.

    On PostgreSQL the database's aigw state (keys, teams, budget alerts, ledger, rollups,
    audit trail) becomes the backup's, all of it or nothing; rate-limit counters and the
    response cache stay. Refused while a gateway serves from the database."""
    from aigw.store.sqlite import maintenance

    cfg = load_config()
    info = maintenance.inspect(file)
    if cfg.store.url:
        from aigw.store.postgres.db import redact

        target = f"the PostgreSQL state at {redact(cfg.store.url)}"
    else:
        target = str(paths.resolve().state_file)
    if not yes and not typer.confirm(
        f"Replace {target} with {file} ({info['ledger_rows']:,} ledger rows)?"
    ):
        raise typer.Exit(1)
    if cfg.store.url:
        import asyncio

        from aigw.store.postgres import maintenance as pg_maintenance
        from aigw.store.postgres import open_postgres
        from aigw.store.postgres.copy import TABLES

        async def run() -> None:
            db = await open_postgres(cfg.store.url, max_size=1)
            try:
                bar, step, sized = _table_progress(TABLES, quiet=False)
                with bar:
                    await pg_maintenance.restore(db, file, step, sized)
            finally:
                await db.close()

        asyncio.run(run())
    else:
        maintenance.restore(file, paths.resolve().state_file)
    console.print(f"restored {target} from {file} ({info['ledger_rows']:,} ledger rows)")
