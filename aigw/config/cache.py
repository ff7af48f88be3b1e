"""``[cache]``: the response cache (exact match, in the state file).

Off by default: a gateway that starts answering repeated calls from memory changes
what an existing deployment sees (an eval at temperature 0 that expects fresh calls),
so caching is opted into here, per team or per key (``--cache``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table

CACHE_MODES = ("off", "deterministic", "all")

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)
_BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_ttl(text: str | int) -> int | None:
    """'90s', '15m', '1h', '7d', '2w' or a number of seconds -> seconds; None if not one."""
    if isinstance(text, int):
        return text if text >= 0 else None
    m = _DURATION.match(text)
    if not m:
        return None
    return int(m.group(1)) * _SECONDS[m.group(2) or "s"]


def format_ttl(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _SECONDS[unit] == 0:
            return f"{seconds // _SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_size(text: str | int) -> int | None:
    """'512MB', '2GB', '64KB' (binary units) or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text if text >= 0 else None
    m = _SIZE.match(text)
    if not m:
        return None
    return int(m.group(1)) * _BYTES[(m.group(2) or "B").upper()]


def format_size(n: int) -> str:
    for unit in ("TB", "GB", "MB", "KB"):
        if n and n % _BYTES[unit] == 0:
            return f"{n // _BYTES[unit]}{unit}"
    return f"{n}B"


@dataclass(slots=True)
class CacheConfig:
    # off | deterministic (temperature 0 or a seed; embeddings) | all (every
    # cacheable call). Teams and keys may set their own (`--cache`).
    mode: str = "off"
    ttl: int = 3600  # seconds an answer is served; teams and keys: --cache-ttl
    max_size: int = 512 << 20  # bytes of answers kept in the state file (LRU beyond)
    # false: each team has its own answers; true: one team's answer serves another's
    # identical request.
    shared: bool = False


def _read(r: Reader) -> CacheConfig:
    d = CacheConfig()
    mode = r.get("mode", str, d.mode)
    if mode not in CACHE_MODES:
        r.fail("mode", f'must be "off", "deterministic" or "all" (got {mode!r})')
    raw_ttl = r.get("ttl", (str, int), format_ttl(d.ttl))
    ttl = parse_ttl(raw_ttl)
    if ttl is None:
        r.fail("ttl", f"not a duration: {raw_ttl!r} (use e.g. 90s, 15m, 1h, 7d)")
    raw_size = r.get("max_size", (str, int), format_size(d.max_size))
    size = parse_size(raw_size)
    if size is None:
        r.fail("max_size", f"not a size: {raw_size!r} (use e.g. 64MB, 2GB)")
    assert ttl is not None and size is not None
    return CacheConfig(mode=mode, ttl=ttl, max_size=size, shared=r.get("shared", bool, d.shared))


def _write(c: CacheConfig) -> dict[str, Any]:
    return {
        "mode": c.mode,
        "ttl": format_ttl(c.ttl),
        "max_size": format_size(c.max_size),
        "shared": c.shared,
    }


CACHE = table(
    '# Response cache: mode = "off" | "deterministic" (only calls with temperature 0 or\n'
    '# a seed, and embeddings) | "all". Answers are kept in the state file for ttl, at\n'
    "# most max_size (least recently used go first), per team unless shared = true.\n"
    "# Per team/key: `aigw teams update T --cache all --cache-ttl 1d`. Per request:\n"
    "# Cache-Control: no-cache (refresh) / no-store, x-aigw-cache-ttl: SECONDS.",
    CacheConfig,
    _read,
    _write,
)
