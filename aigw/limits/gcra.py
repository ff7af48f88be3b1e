"""GCRA, the generic cell rate algorithm: a token bucket kept as one timestamp.

A limit of N per minute emits one unit every ``interval = 60 / N`` seconds. The
bucket remembers only its *theoretical arrival time* (TAT): the moment it would be
full again. Taking ``cost`` units moves the TAT ``cost * interval`` into the future;
a request fits while the TAT stays within ``tau`` (the burst: ``capacity * interval``)
of now. So the refill is continuous (no window edge that admits twice the limit), a
whole minute's allowance can go at once only when ``burst = 1``, and the state is one
number that is cheap to check, to persist and to restore.

The TAT is held as ``at + debt``: the time of the last change and how far ahead of it
the TAT was. Epoch timestamps (~1.8e9 s) resolve only to ~2e-7 s, so adding thousands
of small intervals to one would drift; the debt is small and exact, and ``now - at``
of two close timestamps is exact too. Times are wall-clock seconds (``time.time()``)
so a persisted TAT means the same thing after a restart.
"""

from __future__ import annotations

import math

# Never refuse a call over less than a microsecond (float rounding of the debt).
EPSILON = 1e-6


class Bucket:
    """One rate limit: ``limit`` units per minute with a burst of ``capacity`` units."""

    __slots__ = ("at", "capacity", "debt", "id", "interval", "limit", "limit_text", "tau")

    def __init__(self, bucket_id: str, per_minute: int, burst: float = 1.0) -> None:
        self.id = bucket_id
        self.at = 0.0
        self.debt = 0.0
        self.limit = per_minute
        self.limit_text = str(per_minute)  # for the x-ratelimit-limit-* headers
        self.interval = 60.0 / per_minute
        self.capacity = max(1, math.floor(per_minute * burst + 1e-9))
        self.tau = self.capacity * self.interval

    @property
    def tat(self) -> float:
        """The theoretical arrival time: when the bucket is full again (epoch seconds)."""
        return self.at + self.debt

    def _debt(self, now: float) -> float:
        """Seconds of refill still owed at ``now``."""
        if now <= self.at:  # the same instant (or a clock step back): nothing refilled
            return self.debt
        d = self.debt - (now - self.at)
        return d if d > 0.0 else 0.0

    def configure(self, per_minute: int, burst: float, now: float) -> None:
        """Change the limit, keeping what was used (not the time it takes to refill)."""
        used = self.used(now)
        self.limit = per_minute
        self.limit_text = str(per_minute)
        self.interval = 60.0 / per_minute
        self.capacity = max(1, math.floor(per_minute * burst + 1e-9))
        self.tau = self.capacity * self.interval
        self.at, self.debt = now, used * self.interval

    def restore(self, tat: float, interval: float, now: float) -> None:
        """Load a persisted TAT written when the limit had ``interval``."""
        used = max(0.0, tat - now) / interval if interval > 0 else 0.0
        self.at, self.debt = now, used * self.interval

    def used(self, now: float) -> float:
        """Units taken and not yet refilled (may exceed capacity after a settle)."""
        return self._debt(now) / self.interval

    def wait(self, now: float, cost: float, share: float = 1.0) -> float:
        """Seconds until ``cost`` units fit within ``share`` of the burst; 0.0 = now.

        A cost larger than the allowed burst is clamped to it, so an oversized
        request waits for a full bucket instead of being refused forever.
        """
        allowed = self.tau * share
        need = cost * self.interval
        if need > allowed:
            need = allowed
        over = self._debt(now) + need - allowed
        return over if over > EPSILON else 0.0

    def take(self, now: float, cost: float) -> float:
        """Take ``cost`` units (clamped to the burst); returns the units charged."""
        charged = cost if cost < self.capacity else float(self.capacity)
        self.debt = self._debt(now) + charged * self.interval
        if now > self.at:
            self.at = now
        return charged

    def adjust(self, now: float, delta: float) -> None:
        """Charge ``delta`` more units, or give ``-delta`` back (never beyond full)."""
        d = self._debt(now) + delta * self.interval
        self.debt = d if d > 0.0 else 0.0
        if now > self.at:
            self.at = now

    def remaining(self, now: float) -> int:
        """Whole units that could be taken at ``now``."""
        left = (self.tau - self._debt(now) + EPSILON) / self.interval
        return max(0, min(self.capacity, math.floor(left)))

    def reset(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return self._debt(now)


def go_duration(seconds: float) -> str:
    """Seconds as OpenAI's rate-limit headers write them: '20ms', '1.5s', '6m0s', '1h2m3s'."""
    if seconds <= 0:
        return "0s"
    ms = math.ceil(seconds * 1000 - EPSILON)
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = str(rest // 1000) if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class Counters:
    """Every bucket by id, which changed since the last write, and what was restored.

    The hot path only marks buckets dirty (a set add); :meth:`snapshot` turns the
    dirty set into rows for one batched write.
    """

    def __init__(self, burst: float) -> None:
        self.burst = burst
        self.buckets: dict[str, Bucket] = {}
        self.dirty: set[Bucket] = set()
        self.dropped: set[str] = set()
        # Persisted state waiting for its bucket to be created: id -> (tat, interval).
        self.restored: dict[str, tuple[float, float]] = {}

    def bucket(self, bucket_id: str, per_minute: int, now: float) -> Bucket:
        """The bucket ``bucket_id`` at ``per_minute``, created (and restored) if new."""
        b = self.buckets.get(bucket_id)
        if b is None:
            b = self.buckets[bucket_id] = Bucket(bucket_id, per_minute, self.burst)
            self.dropped.discard(bucket_id)
        elif b.limit != per_minute:
            b.configure(per_minute, self.burst, now)
            self.dirty.add(b)
        if self.restored:  # only right after start: persisted state for this bucket?
            saved = self.restored.pop(bucket_id, None)
            if saved is not None:
                b.restore(saved[0], saved[1], now)
        return b

    def drop(self, bucket_id: str) -> None:
        """Forget a bucket whose limit was removed (and its persisted row)."""
        b = self.buckets.pop(bucket_id, None)
        if b is not None:
            self.dirty.discard(b)
        self.restored.pop(bucket_id, None)
        self.dropped.add(bucket_id)

    def snapshot(self, now: float) -> tuple[list[tuple[str, float, float]], list[str]]:
        """(busy rows to write, ids to delete) for the changes since the last call."""
        dirty, self.dirty = self.dirty, set()
        dropped, self.dropped = self.dropped, set()
        busy = [(b.id, b.tat, b.interval) for b in dirty if b.tat > now]
        idle = [b.id for b in dirty if b.tat <= now]
        idle.extend(dropped)
        return busy, idle
