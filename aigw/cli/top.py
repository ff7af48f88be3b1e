"""`aigw top`: what the gateway is doing now, per team, refreshed each second.

It reads the ledger the servers commit every call to: the state file read-only (beside
a running server on the same machine, without touching it), or, with ``[store] url``,
the PostgreSQL database every gateway writes to (so it shows them all).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aigw import paths
from aigw.cli.common import console, load_config, parse_duration, print_json
from aigw.config import zone
from aigw.errors import AigwError
from aigw.pricing import format_usd

if TYPE_CHECKING:  # the store is imported when the command runs, not for --help
    from aigw.store.sqlite.live import TeamActivity


class Ledger(Protocol):
    """Where ``top`` reads the calls: the state file or PostgreSQL."""

    where: str  # shown at the bottom of the view

    def team_activity(self, since: float) -> list[TeamActivity]: ...

    def spend_since(self, since: float) -> dict[str, int]: ...

    def close(self) -> None: ...


class StateFile:
    """The SQLite state file, read-only."""

    def __init__(self, path: Path) -> None:
        from aigw.store.sqlite import live

        self.where = str(path)
        self.conn = live.open_readonly(path)

    def team_activity(self, since: float) -> list[TeamActivity]:
        from aigw.store.sqlite import live

        return live.team_activity(self.conn, since)

    def spend_since(self, since: float) -> dict[str, int]:
        from aigw.store.sqlite import live

        return live.spend_since(self.conn, since)

    def close(self) -> None:
        self.conn.close()


class Postgres:
    """The PostgreSQL store, one connection, queried from this synchronous loop through
    an event loop of its own."""

    def __init__(self, url: str) -> None:
        import asyncio  # not at import: `aigw --help` never needs it

        from aigw.store.postgres.db import open_postgres, redact

        self.where = redact(url)
        self.runner = asyncio.Runner()
        try:
            self.db = self.runner.run(open_postgres(url, max_size=1))
        except BaseException:
            self.runner.close()
            raise

    def team_activity(self, since: float) -> list[TeamActivity]:
        from aigw.store.postgres import live

        return self.runner.run(live.team_activity(self.db, since))

    def spend_since(self, since: float) -> dict[str, int]:
        from aigw.store.postgres import live

        return self.runner.run(live.spend_since(self.db, since))

    def close(self) -> None:
        try:
            self.runner.run(self.db.close())
        finally:
            self.runner.close()


def _midnight(tz_name: str, now: float) -> float:
    try:
        tz = zone(tz_name)
    except ValueError:
        tz = datetime.now().astimezone().tzinfo  # type: ignore[assignment]
    local = datetime.fromtimestamp(now, tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def snapshot(ledger: Ledger, window: float, tz_name: str) -> dict[str, Any]:
    """Per team over the last ``window`` seconds, plus each team's spend today."""
    now = time.time()
    teams = ledger.team_activity(now - window)
    today = ledger.spend_since(_midnight(tz_name, now))
    out = []
    for t in teams:
        out.append(
            {
                "team": t.team,
                "requests_per_s": round(t.requests / window, 3),
                "requests": t.requests,
                "errors": t.errors,
                "refused": t.refused,
                "tokens": t.tokens,
                "cost_usd": format_usd(t.cost_nusd, 9),
                "cost_today_usd": format_usd(today.get(t.team, 0), 9),
                "latency_ms_avg": None if t.latency_ms_avg is None else round(t.latency_ms_avg),
            }
        )
    # Teams with spend today but quiet in the window are shown too.
    for team in sorted(set(today) - {t.team for t in teams}):
        out.append(
            {
                "team": team,
                "requests_per_s": 0.0,
                "requests": 0,
                "errors": 0,
                "refused": 0,
                "tokens": 0,
                "cost_usd": format_usd(0, 9),
                "cost_today_usd": format_usd(today[team], 9),
                "latency_ms_avg": None,
            }
        )
    return {"time": now, "window_seconds": window, "teams": out}


def _short(usd: str) -> str:
    return "$" + f"{float(usd):.4f}"


def render(snap: dict[str, Any], where: str) -> Group:
    window = snap["window_seconds"]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("team", "req/s", "requests", "errors", "refused", "tokens", "spend", "today"):
        table.add_column(name, justify="left" if name == "team" else "right")
    totals = {"requests": 0, "errors": 0, "refused": 0}
    for t in snap["teams"]:
        for k in totals:
            totals[k] += t[k]
        table.add_row(
            Text(t["team"]),
            f"{t['requests_per_s']:.2f}",
            str(t["requests"]),
            Text(str(t["errors"]), style="red" if t["errors"] else ""),
            Text(str(t["refused"]), style="yellow" if t["refused"] else ""),
            str(t["tokens"]),
            _short(t["cost_usd"]),
            _short(t["cost_today_usd"]),
        )
    stamp = time.strftime("%H:%M:%S", time.localtime(snap["time"]))
    head = Text.assemble(
        ("aigw top", "bold"),
        f"  {stamp}  last {window:g} s: {totals['requests'] / window:.2f} req/s, "
        f"{totals['errors']} errors, {totals['refused']} refused",
    )
    foot = Text(f"{where}  (q or Ctrl-C to quit)", style="dim")
    if not snap["teams"]:
        return Group(head, Text("no calls in this window"), foot)
    return Group(head, table, foot)


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A function that waits up to ``t`` seconds for a key press (None: none came).
    The terminal is in cbreak mode meanwhile; without a terminal it only waits."""
    if not sys.stdin.isatty():

        def wait(t: float) -> str | None:
            time.sleep(t)
            return None

        yield wait
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:

        def read(t: float) -> str | None:
            ready, _, _ = select.select([fd], [], [], t)
            return os.read(fd, 1).decode(errors="replace") if ready else None

        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def top(
    window: Annotated[
        str,
        typer.Option("--window", help="Rates and totals over this much recent time (30s, 5m, 1h)."),
    ] = "60s",
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one view and exit.")] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON snapshot for scripts and exit.")
    ] = False,
) -> None:
    """Live view of requests/s, spend, errors and limit refusals per team (q to quit)."""
    seconds = parse_duration(window)
    if seconds <= 0:
        raise AigwError("--window must be longer than 0 s")
    cfg = load_config()
    ledger: Ledger = (
        Postgres(cfg.store.url) if cfg.store.url else StateFile(paths.resolve().state_file)
    )
    try:
        tz = cfg.budgets.timezone

        def view() -> Group:
            return render(snapshot(ledger, seconds, tz), ledger.where)

        if json:
            print_json(snapshot(ledger, seconds, tz))
            return
        if once:
            console.print(view())
            return
        with (
            Live(view(), console=console, auto_refresh=False, screen=False) as screen,
            _keys() as key,
            contextlib.suppress(KeyboardInterrupt),
        ):
            while key(interval) not in ("q", "Q"):
                screen.update(view(), refresh=True)
    finally:
        ledger.close()
