"""`aigw teams ...`: limits, budgets and priority shared by a team's keys."""

from __future__ import annotations

import time
from types import EllipsisType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aigw import report as report_mod
from aigw.cli.common import console, iso, load_config, parse_duration, print_json, with_store
from aigw.cli.limits import (
    LIMIT_HEADERS,
    AlertOpt,
    BudgetOpt,
    CacheOpt,
    CacheTtlOpt,
    ModelsOpt,
    ParallelOpt,
    PeriodOpt,
    PriorityOpt,
    RegionsOpt,
    RpmOpt,
    ScrubOpt,
    TpmOpt,
    apply,
    as_dict,
    cells,
)
from aigw.config import Config
from aigw.errors import AigwError
from aigw.limits.budgets import money
from aigw.model import NO_LIMITS, KeyRecord, Limits, TeamRecord

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.store.base import Store

app = typer.Typer(
    help="Create and change teams: rate limits, hard budgets, alerts and priority shared "
    "by all of a team's keys (a key's own limits apply on top). A key may name a team "
    "that has no record; it then has only its own limits. Changes reach a running "
    "server within a second.",
    no_args_is_help=True,
)


NameArg = Annotated[str, typer.Argument(help="The team's name, as keys give it with --team.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _team_dict(
    name: str, limits: Limits | None, cfg: Config, keys: int, rec: TeamRecord | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "configured": limits is not None,
        "active_keys": keys,
        **as_dict(limits or NO_LIMITS, cfg),
        "log_bodies": bool(rec and rec.body_retention is not None),
        "body_retention_s": rec.body_retention if rec else None,
        "created_at": iso(rec.created_at) if rec else None,
        "updated_at": iso(rec.updated_at) if rec else None,
    }


def _print_saved(rec: TeamRecord, cfg: Config, verb: str, json: bool) -> None:
    if json:
        print_json(_team_dict(rec.name, rec.limits, cfg, 0, rec) | {"active_keys": None})
        return
    table = Table("team", *LIMIT_HEADERS)
    table.add_row(rec.name, *cells(rec.limits, cfg))
    console.print(f"[green]✓[/] {verb} team {rec.name}")
    console.print(table)
    if rec.body_retention is not None:
        days = rec.body_retention / 86400
        console.print(
            f"  prompts and answers are kept in the audit log (scrubbed) for {days:g} days"
        )


@app.command("create")
def create(
    name: NameArg,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    max_parallel: ParallelOpt = None,
    budget: BudgetOpt = None,
    period: PeriodOpt = None,
    alert_at: AlertOpt = None,
    priority: PriorityOpt = None,
    models: ModelsOpt = None,
    regions: RegionsOpt = None,
    cache: CacheOpt = None,
    cache_ttl: CacheTtlOpt = None,
    scrub: ScrubOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a team with its limits (every limit is optional)."""
    cfg = load_config()
    limits = apply(
        NO_LIMITS,
        rpm=rpm,
        tpm=tpm,
        max_parallel=max_parallel,
        budget=budget,
        period=period,
        alert_at=alert_at,
        priority=priority,
        models=models,
        regions=regions,
        cache=cache,
        cache_ttl=cache_ttl,
        scrub=scrub,
    )

    async def run(store: Store) -> TeamRecord:
        return await store.teams.create(name, limits)

    _print_saved(with_store(run), cfg, "created", json)


@app.command("update")
def update(
    name: NameArg,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    max_parallel: ParallelOpt = None,
    budget: BudgetOpt = None,
    period: PeriodOpt = None,
    alert_at: AlertOpt = None,
    priority: PriorityOpt = None,
    models: ModelsOpt = None,
    regions: RegionsOpt = None,
    cache: CacheOpt = None,
    cache_ttl: CacheTtlOpt = None,
    scrub: ScrubOpt = None,
    log_bodies: Annotated[
        bool | None,
        typer.Option(
            "--log-bodies/--no-log-bodies",
            help="Keep this team's prompts and answers in the audit log, as the provider "
            "saw them (scrubbed), for --retention; --no-log-bodies stops (kept ones expire).",
        ),
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention",
            help="How long logged bodies are kept before they are deleted (e.g. 7d, 30d; "
            "default 30d).",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Change some of a team's limits; the others stay as they are."""
    cfg = load_config()
    keep: float | EllipsisType | None = ...
    if retention is not None and log_bodies is False:
        raise AigwError("--retention goes with --log-bodies, not --no-log-bodies")
    if log_bodies is False:
        keep = None
    elif log_bodies or retention is not None:
        keep = parse_duration(retention or "30d")
        if keep <= 0:
            raise AigwError("--retention must be positive")

    async def run(store: Store) -> TeamRecord:
        current = await store.teams.get(name)
        limits = apply(
            current.limits,
            rpm=rpm,
            tpm=tpm,
            max_parallel=max_parallel,
            budget=budget,
            period=period,
            alert_at=alert_at,
            priority=priority,
            models=models,
            regions=regions,
            cache=cache,
            cache_ttl=cache_ttl,
            scrub=scrub,
        )
        return await store.teams.update(name, limits, body_retention=keep)

    _print_saved(with_store(run), cfg, "updated", json)


@app.command("list")
def list_(json: JsonOpt = False) -> None:
    """List teams with their limits, and teams that only keys name."""
    cfg = load_config()

    async def run(store: Store) -> tuple[list[TeamRecord], dict[str, int], set[str]]:
        now = time.time()
        named = {k.team for k in await store.keys.list_all() if not k.admin}
        return await store.teams.list_all(), await store.teams.key_counts(now), named

    records, counts, named = with_store(run)
    by_name = {r.name: r for r in records}
    names = sorted(set(by_name) | named)
    if json:
        print_json(
            [
                _team_dict(
                    n,
                    by_name[n].limits if n in by_name else None,
                    cfg,
                    counts.get(n, 0),
                    by_name.get(n),
                )
                for n in names
            ]
        )
        return
    if not names:
        console.print("no teams yet: aigw teams create NAME --rpm 60 --budget 100")
        return
    table = Table("team", "keys", *LIMIT_HEADERS)
    for n in names:
        rec = by_name.get(n)
        row = cells(rec.limits, cfg) if rec else ["[dim]no team record: key limits only[/]"]
        table.add_row(n, str(counts.get(n, 0)), *row)
    console.print(table)


@app.command("show")
def show(name: NameArg, json: JsonOpt = False) -> None:
    """Show a team: limits, keys, and this period's budget, spend and alerts."""
    cfg = load_config()
    now = time.time()

    async def run(
        store: Store,
    ) -> tuple[TeamRecord | None, list[KeyRecord], list[report_mod.BudgetRow]]:
        rec = await store.teams.find(name)
        keys = [k for k in await store.keys.list_all() if k.team == name]
        budgets = [b for b in await report_mod.budgets(store, cfg, now) if b.team == name]
        return rec, keys, budgets

    rec, keys, budgets = with_store(run)
    if rec is None and not keys:
        raise AigwError(f"no team {name!r}: no team record and no key names it")
    active = [k for k in keys if k.state(now) == "active"]
    if json:
        out = _team_dict(name, rec.limits if rec else None, cfg, len(active), rec)
        out["keys"] = [
            {
                "id": k.id,
                "app": k.app,
                "name": k.name,
                "state": k.state(now),
                "limits": None if k.limits.empty else as_dict(k.limits, cfg),
            }
            for k in keys
        ]
        out["budgets"] = [report_mod.budget_dict(b) for b in budgets]
        print_json(out)
        return
    if rec is None:
        console.print(
            f"team [bold]{name}[/] has no team record: its keys have only their own limits"
        )
    else:
        table = Table(*LIMIT_HEADERS, title=f"team {name}")
        table.add_row(*cells(rec.limits, cfg))
        console.print(table)
    keys_table = Table("key", "app", "name", "state", *LIMIT_HEADERS, title="keys")
    for k in keys:
        keys_table.add_row(
            k.id,
            k.app or "-",
            k.name or "-",
            k.state(now),
            *(cells(k.limits, cfg) if not k.limits.empty else ["-"] * len(LIMIT_HEADERS)),
        )
    console.print(keys_table)
    if budgets:
        print_budgets(budgets)


@app.command("remove")
def remove(name: NameArg) -> None:
    """Delete a team's record: its keys keep working with only their own limits."""

    async def run(store: Store) -> None:
        await store.teams.remove(name)

    with_store(run)
    console.print(f"[green]✓[/] removed team {name}; its keys now have only their own limits")


def print_budgets(rows: list[report_mod.BudgetRow]) -> None:
    """Budgets of the current period as a rich table."""
    table = Table(title="budgets, current period")
    for col in ("budget of", "period", "budget", "spent", "remaining", "used", "alerts"):
        table.add_column(
            col, justify="right" if col in ("budget", "spent", "remaining") else "left"
        )
    for b in rows:
        pct = b.spent_nusd * 100 // b.budget_nusd if b.budget_nusd else 100
        colour = "red" if pct >= 100 or b.refused else "yellow" if b.alerts else "green"
        flags = [f"{p}%" for p in b.alerts] + (["[red]refusing[/]"] if b.refused else [])
        who = f"team {b.name}" if b.scope == "team" else f"key {b.name} ({b.team})"
        table.add_row(
            who,
            f"{b.period.label} (resets {b.resets})",
            money(b.budget_nusd),
            money(b.spent_nusd),
            money(b.remaining_nusd),
            f"[{colour}]{pct}%[/]",
            " ".join(flags) or "-",
        )
    console.print(table)
    if any(b.unpriced for b in rows):
        console.print(
            "[yellow]Some calls under a budget used a model with no known price and count "
            'as $0 (\\[budgets] unpriced = "allow").[/]'
        )
