"""Hard budgets: spend per team and key, reservations for calls in flight.

Spend is kept in memory per local calendar day (loaded from the ledger at start,
then added to as calls settle), so the spend of any current period is a sum of a
few days and no request waits on SQLite. A call reserves its worst-case cost at
admission; when it ends the reservation is released and the real cost is added.
So ``spent + reserved`` bounds what the period can end up costing, and admission
refuses a call whose worst case would push it past the budget.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from aigw.config import BudgetsConfig
from aigw.limits.periods import Period
from aigw.pricing import Price, usd
from aigw.usage import Usage


class Spend:
    """One team's or key's spend per local day, plus its in-flight reservations."""

    __slots__ = ("_end", "_first", "_kind", "_total", "days", "reserved")

    def __init__(self) -> None:
        self.days: dict[int, int] = {}  # day ordinal -> nano-USD
        self.reserved = 0
        self._kind = ""
        self._first = 0
        self._end = 0
        self._total = 0

    def total(self, p: Period) -> int:
        """Settled spend in period ``p`` (cached until the period changes)."""
        if self._first != p.first_ord or self._kind != p.kind:
            first, end = p.first_ord, p.end_ord
            self._total = sum(v for d, v in self.days.items() if first <= d < end)
            self._kind, self._first, self._end = p.kind, first, end
        return self._total

    def add(self, day: int, cost: int) -> None:
        self.days[day] = self.days.get(day, 0) + cost
        if self._first <= day < self._end:
            self._total += cost

    def replace(self, days: dict[int, int]) -> None:
        """Take the spend per day counted elsewhere (Redis: every process's)."""
        self.days = days
        self._kind = ""  # recompute on next use

    def prune(self, before: int) -> None:
        """Forget days before ordinal ``before`` (no current period reaches them)."""
        for d in [d for d in self.days if d < before]:
            del self.days[d]
        self._kind = ""  # recompute on next use


def output_bound(
    price: Price | None,
    max_output: int | None,
    provider_type: str,
    cfg: BudgetsConfig,
    anthropic_default: int,
) -> int:
    """The most output tokens the call can produce (and be billed for)."""
    if max_output is not None:
        return max_output
    if provider_type == "anthropic":
        # Anthropic requires max_tokens; aigw sends this default when a client has none.
        return anthropic_default
    if price is not None and price.max_output_tokens is not None:
        return price.max_output_tokens
    return cfg.max_output_tokens


def worst_case(price: Price, prompt_bound: int, output_tokens: int) -> int:
    """Worst-case cost in nano-USD: the prompt's upper bound (:mod:`aigw.tokens`), at
    most the model's context window (a provider refuses a longer prompt unbilled),
    full output, no cache."""
    prompt = prompt_bound
    if price.context_window is not None:
        prompt = min(prompt, price.context_window)
    return price.cost_nusd(Usage(prompt_tokens=prompt, completion_tokens=output_tokens))


def money(nusd: int) -> str:
    """'$12.34' for humans; small amounts keep their significant digits ('$0.000123')."""
    value = usd(nusd)
    if abs(value) >= 1 or value == 0:
        return f"${value.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"
    whole, _, frac = f"{value:.9f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"
