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
    """Write config.toml and record the change in the audit log (its changed sections,
    before and after)."""
    path = paths.resolve().config_file
    old = config_mod.to_dict(config_mod.load(path)) if path.exists() else {}
    config_mod.save(cfg, path)
    from aigw.audit import config_changes

    before, after = config_changes(old, config_mod.to_dict(cfg))
    if before or after:
        record_admin("config.change", str(path), before=before, after=after)


def record_admin(action: str, target: str, *, before: Any = None, after: Any = None) -> None:
    """Append an admin event to the audit log for a change made outside the state file
    (config.toml, the keyring). Skipped before `aigw init` has created the state file."""
    state = paths.resolve().state_file
    if not state.exists() and not load_config().store.url:
        return
    from aigw.audit import admin_event

    event = admin_event(action, target, before=before, after=after)
    with_store(lambda store: store.audit.append([event]))


def with_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store ([store] url; default: the state file), run ``fn``
    with it, close it."""
    from aigw.store.open import open_store  # not needed for --help

    cfg = load_config()

    async def run() -> T:
        store = await open_store(cfg, paths.resolve().state_file)
        try:
            return await fn(store)
        finally:
            await store.close()

    import asyncio  # not at import: `aigw --help` and the like never need it

    return asyncio.run(run())


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
