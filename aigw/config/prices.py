"""``[prices."MODEL"]``: per-model price overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Parsed, Reader, named


@dataclass(slots=True)
class PriceConfig:
    """A per-model price override, USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    # Anthropic's 1-hour cache write (cache_write is the 5-minute one).
    cache_write_1h: float | None = None


def _read(r: Reader, _name: str, _parsed: Parsed) -> PriceConfig:
    for required in ("input", "output"):
        if required not in r.table:
            r.fail(required, "is required (USD per million tokens)")
    return PriceConfig(
        input=r.number("input", 0.0),
        output=r.number("output", 0.0),
        cached_input=r.number("cached_input", -1.0) if "cached_input" in r.table else None,
        cache_write=r.number("cache_write", -1.0) if "cache_write" in r.table else None,
        cache_write_1h=(r.number("cache_write_1h", -1.0) if "cache_write_1h" in r.table else None),
    )


def _write(pr: PriceConfig) -> dict[str, Any]:
    price: dict[str, Any] = {"input": pr.input, "output": pr.output}
    if pr.cached_input is not None:
        price["cached_input"] = pr.cached_input
    if pr.cache_write is not None:
        price["cache_write"] = pr.cache_write
    if pr.cache_write_1h is not None:
        price["cache_write_1h"] = pr.cache_write_1h
    return price


PRICES = named(
    '# Price overrides, USD per million tokens: [prices."MODEL"] or\n'
    '# [prices."PROVIDER/MODEL"] with input, output, cached_input, cache_write\n'
    "# (Anthropic: the 5-minute write) and cache_write_1h (Anthropic's 1-hour write).",
    _read,
    _write,
)
