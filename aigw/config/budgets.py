"""``[budgets]``: calendar and worst-case rules for the hard budgets of teams and keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aigw.config.base import Reader, table


@dataclass(slots=True)
class BudgetsConfig:
    """Calendar and worst-case rules for the hard budgets of teams and keys."""

    # Budget periods are calendar days, ISO weeks (from Monday) or months here.
    timezone: str = "UTC"
    # Period of a budget set without --period.
    period: str = "month"
    # Alert thresholds (percent of the budget) of a budget set without --alert-at.
    alert_at: list[int] = field(default_factory=lambda: [50, 80, 100])
    # A model with no known price under a budget: "refuse" (its cost cannot be
    # checked) or "allow" (it counts as $0).
    unpriced: str = "refuse"
    # Worst-case output tokens when neither the request nor the price table bounds them.
    max_output_tokens: int = 32768
    # Obsolete: the reservation now uses an upper bound of the prompt's tokens (one per
    # byte of text), which needs no margin. Still accepted so older configs load.
    prompt_margin: float = 1.5


def zone(name: str) -> tzinfo:
    """The time zone ``name``; ValueError when unknown. UTC works without tzdata."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name.upper() == "UTC":
            return UTC
        raise ValueError(name) from None


def _read(r: Reader) -> BudgetsConfig:
    d = BudgetsConfig()
    tz = r.get("timezone", str, d.timezone)
    try:
        zone(tz)
    except ValueError:
        r.fail("timezone", f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)")
    period = r.get("period", str, d.period)
    if period not in ("day", "week", "month"):
        r.fail("period", f'must be "day", "week" or "month" (got {period!r})')
    alert_at = r.get("alert_at", list, d.alert_at)
    for pct in alert_at:
        if isinstance(pct, bool) or not isinstance(pct, int) or not 1 <= pct <= 100:
            r.fail("alert_at", f"must be a list of percents from 1 to 100 (got {pct!r})")
    unpriced = r.get("unpriced", str, d.unpriced)
    if unpriced not in ("refuse", "allow"):
        r.fail("unpriced", f'must be "refuse" or "allow" (got {unpriced!r})')
    cfg = BudgetsConfig(
        timezone=tz,
        period=period,
        alert_at=sorted(set(alert_at)),
        unpriced=unpriced,
        max_output_tokens=r.get("max_output_tokens", int, d.max_output_tokens),
        prompt_margin=r.number("prompt_margin", d.prompt_margin, minimum=1.0),
    )
    if cfg.max_output_tokens < 1:
        r.fail("max_output_tokens", f"must be at least 1 (got {cfg.max_output_tokens})")
    return cfg


def _write(bud: BudgetsConfig) -> dict[str, Any]:
    # prompt_margin is obsolete: read so older files load, never written.
    return {
        "timezone": bud.timezone,
        "period": bud.period,
        "alert_at": list(bud.alert_at),
        "unpriced": bud.unpriced,
        "max_output_tokens": bud.max_output_tokens,
    }


BUDGETS = table(
    "# Hard budgets (`aigw teams create NAME --budget 100 --period month`) count\n"
    "# calendar periods in this time zone; weeks start on Monday. A request is refused\n"
    "# when its worst case would pass the budget: the prompt at one token per byte of\n"
    "# text (a flat allowance per image), at most the model's context window, plus\n"
    "# max_tokens (or the model's maximum output, else max_output_tokens).\n"
    '# unpriced = "refuse" refuses models with no known price under a budget; "allow"\n'
    "# counts them as $0. alert_at: default alert thresholds in percent.",
    BudgetsConfig,
    _read,
    _write,
)
