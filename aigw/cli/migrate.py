"""`aigw migrate --to postgresql://...`: copy the SQLite state into PostgreSQL."""

from __future__ import annotations

from typing import Annotated

import typer

from aigw import paths
from aigw.cli.common import console, err_console, load_config, print_json
from aigw.errors import AigwError


def migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The PostgreSQL database to copy into, e.g. postgresql://aigw@db.internal/aigw "
            "(no password in it: set AIGW_STORE_PASSWORD or PGPASSWORD). Then set "
            "[store] url to it.",
        ),
    ],
    json: Annotated[bool, typer.Option("--json", help="Print a JSON summary for scripts.")] = False,
) -> None:
    """Copy the SQLite state (keys, teams, ledger, rollups, alerts, audit) into PostgreSQL.

    Safe to rerun: rows already copied are skipped. A progress bar per table. Rate-limit
    counters, the response cache and audit bodies are not copied. Stop the gateways that
    write the state file first, then set [store] url and start them on PostgreSQL."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from aigw.config.store import check_url
    from aigw.store.postgres import open_postgres
    from aigw.store.postgres.copy import TABLES, copy_state, totals
    from aigw.store.sqlite.db import open_database

    problem = check_url(to)
    if problem is not None:
        raise AigwError(f"--to {problem}")
    cfg = load_config()
    state = paths.resolve().state_file
    if not state.exists():
        raise AigwError(f"{state}: no state database to copy (see `aigw init`)")

    async def run() -> dict[str, dict[str, int]]:
        src = await open_database(state, synchronous=cfg.ledger.synchronous)
        try:
            dst = await open_postgres(to)
            try:
                counts = await totals(src)
                with Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    transient=True,
                    disable=json,
                ) as progress:
                    tasks = {t: progress.add_task(t, total=counts[t]) for t in TABLES}
                    async with dst.pool.acquire() as conn:
                        done = await copy_state(
                            src, conn, lambda table, n: progress.update(tasks[table], advance=n)
                        )
            finally:
                await dst.close()
        finally:
            await src.close()
        return done.to_json()

    summary = asyncio.run(run())
    if json:
        print_json({"from": str(state), "to": to, "tables": summary})
        return
    for table, c in summary.items():
        console.print(f"{table:14} {c['copied']:>10,} copied of {c['read']:,}")
    console.print(
        f"[green]✓[/] copied into {to}\n"
        f'next: set [store] url = "{to}" in {paths.resolve().config_file} and restart the gateways'
    )
