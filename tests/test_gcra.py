"""Unit tests of the limits engine's pure parts: GCRA buckets, durations, calendar."""

from __future__ import annotations

from datetime import date

import pytest

from aigw.limits.budgets import Spend, money
from aigw.limits.gcra import Bucket, Counters, go_duration
from aigw.limits.periods import Calendar

T0 = 1_800_000_000.0


def take_all(b: Bucket, now: float, cost: float = 1) -> int:
    n = 0
    while b.wait(now, cost) == 0:
        b.take(now, cost)
        n += 1
    return n


def test_full_burst_then_smooth_refill() -> None:
    b = Bucket("k", 60)  # one a second, a minute's worth at once
    assert take_all(b, T0) == 60
    assert b.wait(T0, 1) == pytest.approx(1.0)
    assert b.remaining(T0) == 0 and b.reset(T0) == pytest.approx(60)
    # Half a second later still nothing; after one second exactly one more.
    assert take_all(b, T0 + 0.5) == 0
    assert take_all(b, T0 + 1.0) == 1
    # No window edge: over any minute at most 60 + 60 (burst + refill), never a free 2x.
    assert take_all(b, T0 + 30) == 29


def test_burst_share_limits_what_goes_at_once() -> None:
    b = Bucket("k", 60, burst=0.1)
    assert b.capacity == 6
    assert take_all(b, T0) == 6
    assert b.wait(T0, 1) == pytest.approx(1.0)


def test_odd_rates_do_not_drift() -> None:
    b = Bucket("k", 7)  # 60/7 s per request: float sums must still admit exactly 7
    assert take_all(b, T0) == 7


def test_tokens_settle_back_and_forth() -> None:
    b = Bucket("t", 6000)  # 100 tokens a second
    assert b.take(T0, 1000) == 1000
    assert b.remaining(T0) == 5000
    b.adjust(T0, -700)  # the answer used 300, not 1000
    assert b.remaining(T0) == 5700
    b.adjust(T0, 6000)  # a big surprise: debt beyond the bucket
    assert b.remaining(T0) == 0
    assert b.wait(T0, 1) == pytest.approx(3.01)  # 301 tokens over, at 100 a second
    b.adjust(T0 + 100, -50_000)  # giving back never fills beyond full
    assert b.remaining(T0 + 100) == 6000


def test_oversized_request_waits_for_a_full_bucket() -> None:
    b = Bucket("t", 1000)
    assert b.wait(T0, 5000) == 0  # a full bucket lets it through...
    assert b.take(T0, 5000) == 1000  # ...charging what the bucket holds
    assert b.wait(T0, 5000) == pytest.approx(60.0)


def test_share_reserves_headroom() -> None:
    b = Bucket("q", 60)
    n = 0
    while b.wait(T0, 1, share=0.5) == 0:
        b.take(T0, 1)
        n += 1
    assert n == 30
    assert b.wait(T0, 1) == 0  # the rest is there for full-share callers


def test_changing_a_limit_keeps_the_debt() -> None:
    b = Bucket("k", 60)
    take_all(b, T0)
    b.configure(120, 1.0, T0)
    assert b.used(T0) == pytest.approx(60) and b.remaining(T0) == 60


def test_counters_restore_and_snapshot() -> None:
    c = Counters(burst=1.0)
    c.restored["key:k1:rpm"] = (T0 + 30, 1.0)  # 30 used, written at 60 rpm
    b = c.bucket("key:k1:rpm", 120, T0)  # now 120 rpm: still 30 used
    assert b.used(T0) == pytest.approx(30)
    c.dirty.add(b)
    idle = c.bucket("key:k2:rpm", 60, T0)
    c.dirty.add(idle)
    c.drop("key:k3:rpm")
    busy, gone = c.snapshot(T0)
    assert [row[0] for row in busy] == ["key:k1:rpm"]
    assert sorted(gone) == ["key:k2:rpm", "key:k3:rpm"]
    assert c.snapshot(T0) == ([], [])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.5, "59.5s"),
        (59.9994, "1m0s"),  # rounded up: never tell a client to come back too early
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3723, "1h2m3s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_calendar_periods_in_a_time_zone() -> None:
    cal = Calendar("Europe/Berlin")
    # 2026-03-29 01:30 UTC is 03:30 CEST, the Sunday DST starts.
    ts = 1774747800.0
    day, week, month = (cal.period(k, ts) for k in ("day", "week", "month"))
    assert (day.first, day.end) == (date(2026, 3, 29), date(2026, 3, 30))
    assert day.end_ts - day.start_ts == 23 * 3600  # a short day
    assert (week.first, week.label) == (date(2026, 3, 23), "2026-W13")
    assert (month.first, month.end, month.label) == (date(2026, 3, 1), date(2026, 4, 1), "2026-03")
    assert month.id == "month:2026-03-01"
    assert cal.reset_text(month) == "2026-04-01 00:00 Europe/Berlin"
    # Midnight local, not UTC: 23:30 UTC on the 31st is already April in Berlin.
    assert cal.period("month", 1775000000.0).first == date(2026, 4, 1)
    assert cal.horizon(ts) == date(2026, 3, 1)
    assert cal.day(ts) == date(2026, 3, 29).toordinal()


def test_december_rolls_into_the_next_year() -> None:
    cal = Calendar("UTC")
    p = cal.period("month", 1798761600.0 - 1)  # 2026-12-31 23:59:59 UTC
    assert (p.first, p.end) == (date(2026, 12, 1), date(2027, 1, 1))


def test_spend_sums_days_of_the_period() -> None:
    cal = Calendar("UTC")
    s = Spend()
    ts = 1795000000.0  # 2026-11-18
    today = cal.day(ts)
    s.add(today, 5)
    s.add(today - 1, 7)
    s.add(today - 40, 1000)  # last month: not in any current period
    month, day = cal.period("month", ts), cal.period("day", ts)
    assert s.total(month) == 12 and s.total(day) == 5
    s.add(today, 1)
    assert s.total(day) == 6
    assert s.total(month) == 13  # recomputed when the period kind changes
    s.prune(month.first_ord)
    assert (today - 40) not in s.days


def test_money() -> None:
    assert money(0) == "$0.00"
    assert money(12_345_000_000) == "$12.34"  # half to even, like the ledger
    assert money(1_000_000_000_000) == "$1,000.00"
    assert money(500_000_000) == "$0.50"
    assert money(123_000) == "$0.000123"


@pytest.mark.parametrize("limit", [1, 7, 13, 60, 97, 1000, 90_000])
def test_exact_at_real_timestamps(limit: int) -> None:
    """Epoch timestamps have coarse float resolution; a limit still admits exactly N."""
    now = 1_795_000_000.123456
    b = Bucket("k", limit)
    assert take_all(b, now) == limit
    assert b.remaining(now) == 0
    assert take_all(b, now + 60) == limit  # a minute later, exactly a full bucket again


def test_counters_restore_a_bucket_created_before_the_load() -> None:
    """Quota buckets exist from the config before start() has read the saved state."""
    c = Counters(burst=1.0)
    early = c.bucket("quota:openai:rpm", 60, T0)
    c.restored = {"quota:openai:rpm": (T0 + 10, 1.0)}
    assert c.bucket("quota:openai:rpm", 60, T0) is early
    assert early.used(T0) == pytest.approx(10)
    assert c.restored == {}
