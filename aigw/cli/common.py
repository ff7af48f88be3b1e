"""Helpers shared by the command modules: consoles, durations, config and state."""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from rich.console import Console

from aigw import config as config_mod
from aigw import paths
from aigw.config import Config
from aigw.errors import AigwError, ConfigError

if TYPE_CHECKING:
    from aigw.store.base import Store

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '30d', '2w' -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise AigwError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 30d, 2w)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_since(text: str, now: float) -> float:
    """A duration back from ``now`` ('7d') or a date/time ('2026-11-01', ISO 8601)."""
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise AigwError(
            f"not a duration or date: {text!r} (use e.g. 7d, 24h or 2026-11-01)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def load_config(*, required: bool = False) -> Config:
    p = paths.resolve()
    if required and not p.config_file.exists():
        raise ConfigError(f"{p.config_file}: no configuration yet; run `aigw init` first")
    return config_mod.load(p.config_file)


def save_config(cfg: Config) -> None:
    config_mod.save(cfg, paths.resolve().config_file)


def with_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the state store, run ``fn`` with it, close it."""
    from aigw.store import SQLiteStore, open_database  # not needed for --help

    cfg = load_config()

    async def run() -> T:
        db = await open_database(paths.resolve().state_file, synchronous=cfg.ledger.synchronous)
        store = SQLiteStore(db)
        try:
            return await fn(store)
        finally:
            await store.close()

    import asyncio  # not at import: `aigw --help` and the like never need it

    return asyncio.run(run())


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
