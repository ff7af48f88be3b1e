"""Calendar budget periods (day, ISO week from Monday, month) in one time zone.

Spend is kept per local calendar day; a period is a run of days, so changing a
budget's period at run time needs no new query, only a different sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from aigw.config import zone


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # day | week | month
    first: date  # first day
    end: date  # first day after
    start_ts: float
    end_ts: float
    # Day ordinals of first and end, precomputed for the per-request spend sums.
    first_ord: int = field(init=False, repr=False, compare=False, default=0)
    end_ord: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first_ord", self.first.toordinal())
        object.__setattr__(self, "end_ord", self.end.toordinal())

    @property
    def id(self) -> str:
        """Stable name, e.g. 'month:2026-11-01' (how fired alerts are remembered)."""
        return f"{self.kind}:{self.first.isoformat()}"

    @property
    def label(self) -> str:
        """For humans: '2026-11-18', '2026-W47', '2026-11'."""
        if self.kind == "day":
            return self.first.isoformat()
        if self.kind == "week":
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return self.first.strftime("%Y-%m")


class Calendar:
    """Periods and local days for timestamps, with the current ones cached."""

    def __init__(self, tz_name: str) -> None:
        self.tz_name = tz_name
        self.tz: tzinfo = zone(tz_name)
        self._current: dict[str, Period] = {}
        self._day: tuple[float, float, int] = (0.0, 0.0, 0)

    def midnight(self, d: date) -> float:
        return datetime.combine(d, time(0), tzinfo=self.tz).timestamp()

    def local_date(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.tz).date()

    def day(self, ts: float) -> int:
        """The local calendar day of ``ts`` as an ordinal (fast for today)."""
        start, end, ordinal = self._day
        if start <= ts < end:
            return ordinal
        d = self.local_date(ts)
        start, end = self.midnight(d), self.midnight(d + timedelta(days=1))
        if start <= ts < end:  # cache only a well-formed day (not a DST oddity)
            self._day = (start, end, d.toordinal())
        return d.toordinal()

    def period(self, kind: str, ts: float) -> Period:
        """The period of ``kind`` that contains ``ts``."""
        cached = self._current.get(kind)
        if cached is not None and cached.start_ts <= ts < cached.end_ts:
            return cached
        p = self._compute(kind, self.local_date(ts))
        if p.start_ts <= ts < p.end_ts:
            self._current[kind] = p
        return p

    def _compute(self, kind: str, d: date) -> Period:
        if kind == "day":
            first, end = d, d + timedelta(days=1)
        elif kind == "week":
            first = d - timedelta(days=d.weekday())
            end = first + timedelta(days=7)
        elif kind == "month":
            first = d.replace(day=1)
            end = (first + timedelta(days=32)).replace(day=1)
        else:
            raise ValueError(f"unknown budget period {kind!r}")
        return Period(kind, first, end, self.midnight(first), self.midnight(end))

    def horizon(self, ts: float) -> date:
        """The earliest day any current period starts on (week or month)."""
        return min(self.period("week", ts).first, self.period("month", ts).first)

    def reset_text(self, p: Period) -> str:
        """When ``p`` ends, for messages: '2026-12-01 00:00 Europe/Berlin'."""
        return datetime.combine(p.end, time(0)).strftime("%Y-%m-%d %H:%M ") + self.tz_name
