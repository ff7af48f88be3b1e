"""Health per target: circuit breakers and a moving average of time to first byte.

A breaker is *closed* (calls pass) until the target fails ``breaker_failures`` times
in a row, or at least ``breaker_min_calls`` calls in the last ``breaker_window``
seconds failed at ``breaker_failure_ratio`` or more. It then *opens*: calls skip the
target for ``breaker_cooldown`` seconds, at the cost of one dict lookup and one
comparison. After the cooldown it is *half-open*: exactly one call goes through as
a probe; its success closes the breaker, its failure opens it for another cooldown.
A probe that never reports (its call was cancelled) is replaced after a cooldown.
An open breaker only ever skips its target while the call has another one to try:
when every candidate is open they are tried anyway (panic mode, in
:mod:`aigw.pipeline.attempts`), soonest to half-open (:meth:`Health.retry_in`) first.

The window counts calls in ten buckets, so recording a result is O(1) too.

What the pipeline needs is the :class:`Health` protocol, keyed by a target's id
(``provider/model``); :class:`LocalHealth` keeps it in this process, and
:class:`aigw.routing.shared_health.SharedHealth` shares it through Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aigw.config import RoutingConfig

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_BUCKETS = 10
# Weight of the newest sample in the time-to-first-byte average.
EWMA_ALPHA = 0.2


class Health(Protocol):
    """What routing asks about its targets and tells about their calls."""

    def allow(self, target: str) -> bool:
        """Whether a call may go to ``target`` now (False: its breaker is open)."""
        ...

    def success(self, target: str, first_byte: float | None) -> None:
        """A call succeeded; ``first_byte``: seconds until its first content."""
        ...

    def failure(self, target: str) -> None:
        """A call failed in a way that says the target is unwell (not the caller's fault)."""
        ...

    def latency(self, target: str) -> float | None:
        """Recent time to first byte (seconds, an EWMA), None before any call."""
        ...

    def retry_in(self, target: str) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        ...

    def snapshot(self) -> dict[str, BreakerView]:
        """Every target seen so far, for /readyz and ``aigw models list``."""
        ...


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: str
    consecutive_failures: int
    window_calls: int
    window_failures: int
    retry_in: float  # seconds until an open breaker lets a probe through
    latency_ms: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "retry_in_s": round(self.retry_in, 3),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
        }


class Breaker:
    """One target's breaker state and latency average."""

    __slots__ = (
        "_bucket_ids",
        "_calls",
        "_fails",
        "consecutive",
        "ewma",
        "opened_at",
        "probe_at",
        "state",
    )

    def __init__(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.probe_at = 0.0  # when the half-open probe went out (0: none in flight)
        self.ewma: float | None = None
        self._bucket_ids = [-1] * _BUCKETS
        self._calls = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS

    def close(self) -> None:
        """Closed afresh: the failures that opened it are in the past."""
        self.state, self.probe_at, self.consecutive = CLOSED, 0.0, 0
        self._bucket_ids = [-1] * _BUCKETS

    def count(self, bucket: int, failed: bool) -> None:
        i = bucket % _BUCKETS
        if self._bucket_ids[i] != bucket:
            self._bucket_ids[i], self._calls[i], self._fails[i] = bucket, 0, 0
        self._calls[i] += 1
        if failed:
            self._fails[i] += 1

    def window(self, bucket: int) -> tuple[int, int]:
        calls = fails = 0
        for i in range(_BUCKETS):
            if bucket - self._bucket_ids[i] < _BUCKETS:
                calls += self._calls[i]
                fails += self._fails[i]
        return calls, fails


class LocalHealth:
    """Breakers and latency averages of this process (a :class:`Health`)."""

    def __init__(self, config: RoutingConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._bucket_seconds = config.breaker_window / _BUCKETS
        self.breakers: dict[str, Breaker] = {}

    def _get(self, target: str) -> Breaker:
        b = self.breakers.get(target)
        if b is None:
            b = self.breakers[target] = Breaker()
        return b

    def allow(self, target: str) -> bool:
        b = self.breakers.get(target)
        if b is None or b.state == CLOSED:
            return True
        now = self.clock()
        cooldown = self.config.breaker_cooldown
        if b.state == OPEN:
            if now - b.opened_at < cooldown:
                return False
            b.state = HALF_OPEN
            b.probe_at = now
            return True
        # Half-open: one probe at a time; a probe lost without a report is replaced.
        if b.probe_at and now - b.probe_at < cooldown:
            return False
        b.probe_at = now
        return True

    def success(self, target: str, first_byte: float | None) -> None:
        b = self._get(target)
        if first_byte is not None:
            b.ewma = first_byte if b.ewma is None else b.ewma + EWMA_ALPHA * (first_byte - b.ewma)
        b.consecutive = 0
        if b.state != CLOSED:
            b.close()
        b.count(int(self.clock() / self._bucket_seconds), False)

    def failure(self, target: str) -> None:
        b = self._get(target)
        now = self.clock()
        b.consecutive += 1
        bucket = int(now / self._bucket_seconds)
        b.count(bucket, True)
        if b.state == HALF_OPEN:
            self._open(b, now)  # the probe failed
            return
        if b.state == OPEN:
            return
        cfg = self.config
        if b.consecutive >= cfg.breaker_failures:
            self._open(b, now)
            return
        calls, fails = b.window(bucket)
        if calls >= cfg.breaker_min_calls and fails >= cfg.breaker_failure_ratio * calls:
            self._open(b, now)

    @staticmethod
    def _open(b: Breaker, now: float) -> None:
        b.state, b.opened_at, b.probe_at = OPEN, now, 0.0

    def latency(self, target: str) -> float | None:
        b = self.breakers.get(target)
        return None if b is None else b.ewma

    def retry_in(self, target: str) -> float:
        b = self.breakers.get(target)
        if b is None or b.state == CLOSED:
            return 0.0
        return max(0.0, b.opened_at + self.config.breaker_cooldown - self.clock())

    def snapshot(self) -> dict[str, BreakerView]:
        now = self.clock()
        bucket = int(now / self._bucket_seconds)
        out: dict[str, BreakerView] = {}
        for name, b in sorted(self.breakers.items()):
            calls, fails = b.window(bucket)
            state = b.state
            if state == OPEN and now - b.opened_at >= self.config.breaker_cooldown:
                state = HALF_OPEN  # the next call will be the probe
            out[name] = BreakerView(
                state,
                b.consecutive,
                calls,
                fails,
                self.retry_in(name) if state == OPEN else 0.0,
                None if b.ewma is None else b.ewma * 1000,
            )
        return out
