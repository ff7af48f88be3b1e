"""Prices -> cost of a usage, in exact integer nano-USD.

Prices are USD per million tokens, shipped in ``aigw/data/prices.toml`` (with the
date they were taken) and overridable per model in config. Internally each price is
an integer number of micro-USD per million tokens, so

    cost_nusd = round(sum(tokens * micro_usd_per_million) / 1000)

is exact integer arithmetic: report totals equal the sum of their rows.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

from aigw.config import PriceConfig
from aigw.errors import ConfigError
from aigw.memo import Memo
from aigw.usage import Usage

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


def micro(value: float | str | Decimal) -> int:
    """USD per million tokens -> integer micro-USD per million tokens (exact)."""
    d = Decimal(str(value))
    scaled = d * 1_000_000
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {value} has more than 6 decimal places")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class Tier:
    input: int
    output: int
    cached_input: int
    cache_write: int
    # Anthropic's 1-hour cache write; other providers have one write rate.
    cache_write_1h: int


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price, integer micro-USD per million tokens."""

    model: str
    base: Tier
    long: Tier | None = None
    long_threshold: int | None = None
    max_output_tokens: int | None = None
    context_window: int | None = None

    def tier(self, prompt_tokens: int) -> Tier:
        long, threshold = self.long, self.long_threshold
        if long is not None and threshold is not None and prompt_tokens > threshold:
            return long
        return self.base

    def cost_nusd(self, u: Usage) -> int:
        t = self.tier(u.prompt_tokens)
        cached = min(u.cached_tokens, u.prompt_tokens)
        writes = min(u.cache_write_tokens, u.prompt_tokens - cached)
        writes_1h = min(u.cache_write_1h_tokens, writes)
        fresh = u.prompt_tokens - cached - writes
        micro_total = (
            fresh * t.input
            + cached * t.cached_input
            + (writes - writes_1h) * t.cache_write
            + writes_1h * t.cache_write_1h
            + u.completion_tokens * t.output
        )
        # micro-USD/M * tokens = pico-USD; /1000 = nano-USD, rounded half to even.
        q, r = divmod(micro_total, 1000)
        if r > 500 or (r == 500 and q % 2 == 1):
            q += 1
        return q


def _tier(entry: dict[str, Any], prefix: str, fallback: Tier | None = None) -> Tier:
    inp = micro(entry[f"{prefix}input"]) if f"{prefix}input" in entry else None
    if inp is None:
        if fallback is None:
            raise KeyError(f"{prefix}input")
        inp = fallback.input
    out = micro(entry[f"{prefix}output"]) if f"{prefix}output" in entry else None
    if out is None:
        if fallback is None:
            raise KeyError(f"{prefix}output")
        out = fallback.output
    # Without a cache price the provider bills cached tokens as ordinary input.
    cached = micro(entry[f"{prefix}cached_input"]) if f"{prefix}cached_input" in entry else inp
    write = micro(entry[f"{prefix}cache_write"]) if f"{prefix}cache_write" in entry else inp
    # Without a 1-hour price, a 1-hour write is billed as any other write.
    key_1h = f"{prefix}cache_write_1h"
    write_1h = micro(entry[key_1h]) if key_1h in entry else write
    return Tier(inp, out, cached, write, write_1h)


def _from_entry(model: str, entry: dict[str, Any]) -> Price:
    base = _tier(entry, "")
    long = None
    threshold = entry.get("long_context_threshold")
    if threshold is not None:
        long = _tier(entry, "long_", base)
    return Price(
        model=model,
        base=base,
        long=long,
        long_threshold=threshold,
        max_output_tokens=entry.get("max_output_tokens"),
        context_window=entry.get("context_window"),
    )


@dataclass(frozen=True, slots=True)
class Shipped:
    taken: str
    prices: dict[str, Price]
    providers: dict[str, str]  # model -> provider family


def load_shipped() -> Shipped:
    """Read the price table shipped inside the package."""
    text = resources.files("aigw").joinpath("data/prices.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    prices: dict[str, Price] = {}
    providers: dict[str, str] = {}
    for model, entry in data.get("models", {}).items():
        price = _from_entry(model, entry)
        for name in [model, *entry.get("aliases", [])]:
            prices[name] = price
            providers[name] = entry.get("provider", "")
    return Shipped(str(data.get("meta", {}).get("taken", "unknown")), prices, providers)


class PriceBook:
    """Finds the price of a (provider, model): config overrides first, then shipped."""

    def __init__(self, overrides: dict[str, PriceConfig], shipped: Shipped | None = None):
        self.shipped = shipped or load_shipped()
        self.overrides: dict[str, Price] = {}
        for name, pc in overrides.items():
            entry: dict[str, Any] = {"input": pc.input, "output": pc.output}
            if pc.cached_input is not None:
                entry["cached_input"] = pc.cached_input
            if pc.cache_write is not None:
                entry["cache_write"] = pc.cache_write
            if pc.cache_write_1h is not None:
                entry["cache_write_1h"] = pc.cache_write_1h
            try:
                price = _from_entry(name, entry)
            except ValueError as exc:
                raise ConfigError(f"prices.{name}: {exc}") from exc
            base = self.shipped.prices.get(name)
            if base is not None:  # keep the shipped limits; only the money changes
                price = Price(
                    name, price.base, None, None, base.max_output_tokens, base.context_window
                )
            self.overrides[name] = price
        # Keyed by client-chosen model names: bounded (aigw.memo).
        self._memo: Memo[tuple[str, str], Price | None] = Memo(
            self._find, lambda k: len(k[0]) + len(k[1])
        )

    def lookup(self, provider: str, model: str) -> Price | None:
        return self._memo((provider, model))

    def _find(self, key: tuple[str, str]) -> Price | None:
        provider, model = key
        for name in (f"{provider}/{model}", model):
            if name in self.overrides:
                return self.overrides[name]
        candidates = [model]
        if model.startswith("models/"):  # Gemini resource names
            candidates.append(model.removeprefix("models/"))
        for c in list(candidates):
            stripped = _DATE_SUFFIX.sub("", c)
            if stripped != c:
                candidates.append(stripped)
            if c.endswith("-latest"):
                candidates.append(c.removesuffix("-latest"))
        for c in candidates:
            if c in self.shipped.prices:
                return self.shipped.prices[c]
        return None

    def cost_nusd(self, provider: str, model: str, usage: Usage) -> int | None:
        """Cost in nano-USD, or None when the model has no known price."""
        price = self.lookup(provider, model)
        return None if price is None else price.cost_nusd(usage)


NANO = Decimal(1_000_000_000)


def usd(nusd: int) -> Decimal:
    """nano-USD -> Decimal USD, exactly."""
    return Decimal(nusd) / NANO


_ZERO = tuple(f"0.{'0' * places}" if places else "0" for places in range(10))


def format_usd(nusd: int | None, places: int = 6) -> str:
    """nano-USD as a decimal string with ``places`` (<= 9) decimals, rounded half to
    even; integer arithmetic (it runs for every response header)."""
    if nusd is None:
        return "unpriced"
    if nusd == 0:  # a cache hit, a free model: no arithmetic
        return _ZERO[places]
    sign, n = ("-", -nusd) if nusd < 0 else ("", nusd)
    step = 10 ** (9 - places)
    q, r = divmod(n, step)
    if r * 2 > step or (r * 2 == step and q % 2 == 1):
        q += 1
    whole, frac = divmod(q, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"
