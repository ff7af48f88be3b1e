"""`aigw logs`: the audit trail, newest last, optionally followed as it grows."""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from aigw.cli.common import console, load_config, parse_since
from aigw.errors import AigwError
from aigw.model import AuditEvent

if TYPE_CHECKING:
    from aigw.store.base import Store

POLL_SECONDS = 0.5


def _money(nusd: int | None) -> str:
    return "-" if nusd is None else f"${nusd / 1e9:.6f}"


def _what(e: AuditEvent) -> str:
    if e.kind == "admin":
        return f"{e.action} {e.target}"
    target = f"{e.provider}/{e.upstream_model}" if e.provider else "-"
    return f"{e.endpoint or '-'} {e.model or '-'} → {target}"


def _who(e: AuditEvent) -> str:
    if e.kind == "admin":
        return e.actor or "-"
    return f"{e.team or '-'}/{e.app or '-'} {e.key_id or 'no key'}"


def _scrub(e: AuditEvent) -> str:
    if not e.scrub:
        return "-"
    counts: dict[str, int] = orjson.loads(e.scrub)
    return " ".join(f"{k}:{v}" for k, v in counts.items())


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M:%S")


def _table(events: list[AuditEvent]) -> Table:
    table = Table(title="audit trail (times UTC)")
    table.add_column("time", no_wrap=True)
    table.add_column("seq", justify="right")
    for col in ("who", "what", "status", "tokens", "cost", "scrub", "request"):
        table.add_column(col)
    for e in events:
        tokens = "-" if e.prompt_tokens is None else f"{e.prompt_tokens}+{e.completion_tokens or 0}"
        status = "-" if e.status is None else str(e.status)
        if e.status is not None and e.status >= 400:
            status = f"[red]{status}[/]"
        table.add_row(
            _time(e.ts),
            str(e.seq),
            escape(_who(e)),
            escape(_what(e)),
            status,
            tokens,
            _money(e.cost_nusd),
            escape(_scrub(e)),
            escape(e.request_id or "-"),
        )
    return table


def _emit(events: list[AuditEvent], json: bool) -> None:
    if json:
        from aigw.audit import event_dict

        for e in events:
            sys.stdout.write(orjson.dumps(event_dict(e)).decode() + "\n")
        sys.stdout.flush()
    elif events:
        console.print(_table(events))


def logs(
    team: Annotated[str | None, typer.Option("--team", help="Only this team's events.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Only this key's events (its id, key_...).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events since: a duration back (1h, 7d) or a date."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", help="At most this many events (the newest); 0 for all.", min=0),
    ] = 100,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new events as they come (Ctrl-C)."),
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per event (JSON Lines).")
    ] = False,
) -> None:
    """The audit trail: proxied calls and admin changes, oldest first."""
    from aigw import paths
    from aigw.store.open import open_store

    cfg = load_config()
    start = None if since is None else parse_since(since, time.time())
    state = paths.resolve().state_file
    if not state.exists() and not cfg.store.url:
        raise AigwError(f"{state}: no state database yet; run `aigw init` first")

    async def run() -> None:
        store: Store = await open_store(cfg, state)
        audit = store.audit
        try:
            events = await audit.query(since=start, team=team, key_id=key, limit=limit or None)
            if not events and not follow and not json:
                console.print("no audit events match")
            _emit(events, json)
            if not follow:
                return
            last = events[-1].seq if events else ((await audit.head()) or (0, ""))[0]
            while True:
                await asyncio.sleep(POLL_SECONDS)
                new = await audit.query(team=team, key_id=key, after_seq=last)
                if new:
                    _emit(new, json)
                    last = new[-1].seq
        finally:
            await store.close()

    import asyncio

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
