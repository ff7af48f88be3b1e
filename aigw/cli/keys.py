"""`aigw keys ...`: gateway keys for teams and apps."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from aigw.cli.common import console, iso, load_config, parse_duration, print_json, when, with_store
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
from aigw.model import ADMIN_TEAM, NO_LIMITS, KeyRecord

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.store.base import Store

app = typer.Typer(
    help="Create, list, revoke and rotate gateway keys. A key is shown once; only its hash "
    "is stored. Changes reach a running server within a second.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _as_dict(
    rec: KeyRecord, now: float, key: str | None = None, cfg: Config | None = None
) -> dict[str, Any]:

    out: dict[str, Any] = {"id": rec.id}
    if key is not None:
        out["key"] = key
    out.update(
        prefix=rec.prefix,
        name=rec.name,
        team=rec.team,
        admin=rec.admin,
        app=rec.app,
        created_at=iso(rec.created_at),
        expires_at=iso(rec.expires_at),
        revoked_at=iso(rec.revoked_at),
        replaced_by=rec.replaced_by,
        state=rec.state(now),
        limits=None if rec.limits.empty else as_dict(rec.limits, cfg or load_config()),
    )
    return out


def _show_new(key: str, rec: KeyRecord, title: str) -> None:
    lines = [
        f"[bold green]{key}[/]",
        "",
        "Store it now: it cannot be shown again.",
        *(
            ["An admin key: it opens /dashboard and the admin endpoints; it makes no calls."]
            if rec.admin
            else []
        ),
        f"id {rec.id}   team {rec.team}   app {rec.app or '-'}   "
        f"expires {when(rec.expires_at) if rec.expires_at else 'never'}",
    ]
    if not rec.limits.empty:
        shown = zip(LIMIT_HEADERS, cells(rec.limits, load_config()), strict=True)
        lines.append("limits: " + "   ".join(f"{h} {c}" for h, c in shown if c != "-"))
    console.print(Panel("\n".join(lines), title=title, expand=False))


@app.command("create")
def create(
    team: Annotated[
        str | None,
        typer.Option("--team", help="Team the key belongs to (for limits and reports)."),
    ] = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="An admin key: opens the dashboard and admin endpoints, makes no model "
            "calls, belongs to no team.",
        ),
    ] = False,
    app_: Annotated[str | None, typer.Option("--app", help="Application using the key.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label for humans.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h (default: never).")
    ] = None,
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
    """Create a gateway key and print it once. Its limits apply on top of its team's."""
    if admin and team is not None:
        raise AigwError("an admin key belongs to no team: give --admin or --team, not both")
    if not admin and team is None:
        raise AigwError("give the key's team (--team TEAM), or --admin for an admin key")
    expires_at = time.time() + parse_duration(expires) if expires else None
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

    async def run(store: Store) -> tuple[str, KeyRecord]:
        return await store.keys.create(
            team=team or ADMIN_TEAM,
            app=app_,
            name=name,
            expires_at=expires_at,
            limits=limits,
            admin=admin,
        )

    key, rec = with_store(run)
    if json:
        print_json(_as_dict(rec, time.time(), key))
    else:
        _show_new(key, rec, "new admin key" if admin else "new gateway key")


@app.command("list")
def list_(
    team: Annotated[str | None, typer.Option("--team", help="Only this team's keys.")] = None,
    json: JsonOpt = False,
) -> None:
    """List keys (ids and prefixes, never the keys)."""
    records = with_store(lambda store: store.keys.list_all())
    if team is not None:
        records = [r for r in records if r.team == team]
    now = time.time()
    if json:
        cfg = load_config()
        print_json([_as_dict(r, now, cfg=cfg) for r in records])
        return
    if not records:
        console.print("no keys yet: aigw keys create --team TEAM")
        return
    cfg = load_config()
    table = Table("id", "prefix", "team", "app", "name", "created", "expires", "state", "limits")
    colours = {"active": "green", "revoked": "red", "expired": "yellow"}
    for r in records:
        state = r.state(now)
        shown = zip(LIMIT_HEADERS, cells(r.limits, cfg), strict=True)
        table.add_row(
            r.id,
            r.prefix + "…",
            r.team,
            r.app or "-",
            r.name or "-",
            when(r.created_at),
            when(r.expires_at),
            f"[{colours[state]}]{state}[/]",
            " ".join(f"{h}={c}" for h, c in shown if c != "-") or "-",
        )
    console.print(table)


@app.command("update")
def update(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `aigw keys list`).")],
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
    """Change some of a key's own limits; the others stay as they are."""

    async def run(store: Store) -> KeyRecord:
        current = await store.keys.get(key_id)
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
        return await store.keys.set_limits(key_id, limits)

    rec = with_store(run)
    if json:
        print_json(_as_dict(rec, time.time()))
        return
    cfg = load_config()
    table = Table("key", "team", *LIMIT_HEADERS)
    table.add_row(rec.id, rec.team, *cells(rec.limits, cfg))
    console.print(f"[green]✓[/] updated key {rec.id}; a running server applies it within a second")
    console.print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `aigw keys list`).")],
    json: JsonOpt = False,
) -> None:
    """Revoke a key at once."""

    async def run(store: Store) -> KeyRecord:
        return await store.keys.revoke(key_id)

    rec = with_store(run)
    if json:
        print_json(_as_dict(rec, time.time()))
    else:
        console.print(
            f"[green]✓[/] revoked {rec.id} (team {rec.team}); a running server "
            "refuses it within a second"
        )


@app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `aigw keys list`).")],
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old key keeps working, e.g. 1h, 0s.")
    ] = "1h",
    json: JsonOpt = False,
) -> None:
    """Issue a replacement key; the old one keeps working for the grace period."""
    seconds = parse_duration(grace)

    async def run(store: Store) -> tuple[str, KeyRecord, KeyRecord]:
        return await store.keys.rotate(key_id, grace=seconds)

    key, new, old = with_store(run)
    now = time.time()
    if json:
        print_json({**_as_dict(new, now, key), "old": _as_dict(old, now)})
        return
    _show_new(key, new, f"replacement for {old.id}")
    console.print(f"the old key {old.id} works until {when(old.expires_at)}")
