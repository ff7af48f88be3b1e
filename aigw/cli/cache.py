"""`aigw cache ...`: what the response cache holds and saved; clearing it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aigw.cli.common import console, print_json, with_store
from aigw.limits.budgets import money

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.cache.entry import CacheStats
    from aigw.store.base import Store

app = typer.Typer(
    help="The response cache ([cache] in config.toml; per team or key: --cache): what it "
    "holds, the hits it served and the money they saved; clear it.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@app.command("stats")
def stats(json: JsonOpt = False) -> None:
    """Answers kept per team and model (count, bytes, expired), hits served and USD saved."""

    async def run(store: Store) -> list[CacheStats]:
        return await store.cache.stats(time.time())

    rows = with_store(run)
    if json:
        print_json(
            {
                "entries": sum(r.entries for r in rows),
                "bytes": sum(r.bytes for r in rows),
                "hits": sum(r.hits for r in rows),
                "saved_nusd": sum(r.saved_nusd for r in rows),
                "by_team_model": [
                    {
                        "team": r.team,
                        "model": r.model,
                        "entries": r.entries,
                        "bytes": r.bytes,
                        "expired": r.expired,
                        "hits": r.hits,
                        "saved_nusd": r.saved_nusd,
                        "saved_usd": r.saved_nusd / 1e9,
                    }
                    for r in rows
                ],
            }
        )
        return
    if not rows:
        console.print("The response cache is empty and has served no hits.")
        return
    table = Table("team", "model", "answers", "size", "expired", "hits", "saved")
    for r in rows:
        table.add_row(
            r.team,
            r.model,
            f"{r.entries:,}",
            _size(r.bytes),
            f"{r.expired:,}",
            f"{r.hits:,}",
            money(r.saved_nusd),
        )
    console.print(table)
    total = sum(r.saved_nusd for r in rows)
    console.print(
        f"{sum(r.entries for r in rows):,} answers, {_size(sum(r.bytes for r in rows))}; "
        f"{sum(r.hits for r in rows):,} hits saved {money(total)}"
    )


@app.command("clear")
def clear(
    team: Annotated[
        str | None, typer.Option("--team", help="Only the answers this team's calls stored.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only answers for this model (as asked for).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Delete cached answers (all, or a team's and/or a model's); a running server drops
    them from memory within a second."""

    async def run(store: Store) -> int:
        return await store.cache.clear(team=team, model=model, now=time.time())

    n = with_store(run)
    if json:
        print_json({"deleted": n, "team": team, "model": model})
        return
    what = " ".join(
        p for p in (f"of team {team}" if team else "", f"for model {model}" if model else "") if p
    )
    console.print(f"[green]✓[/] deleted {n:,} cached answer{'s' if n != 1 else ''} {what}".rstrip())
