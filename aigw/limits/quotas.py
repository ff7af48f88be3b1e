"""Upstream quotas: the org's rpm/tpm at a provider, shared out by priority.

``[quotas."openai"]`` and ``[quotas."openai/gpt-4o"]`` declare what the provider
allows the whole organisation. A call takes one request and its estimated tokens
from every quota it falls under before it is sent. When a quota is used up the call
waits in its provider's queue, ordered by priority (high, normal, low; first come
first served within one), for at most ``queue_max_wait`` seconds, then gets a 429.
Low priority may use only ``low_priority_share`` of each quota, so high-priority
traffic always finds headroom. A 429 from the provider pauses that model for its
Retry-After, whether or not a quota is declared for it, so calls queue at the
gateway instead of failing upstream one after another.

Scheduling never lets a waiter jump ahead of a higher-ranked one on the quota that
blocks it, but calls to another model (a different quota) are not held up behind it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from aigw.config import Config
from aigw.limits.alerts import retry_after_seconds
from aigw.limits.gcra import Bucket, Counters
from aigw.limits.refusals import quota_wait_too_long
from aigw.memo import MAX_KEY

log = logging.getLogger("aigw.quotas")

RANK = {"high": 0, "normal": 1, "low": 2}
# Without a Retry-After, an upstream 429 pauses the model this long; a longer one is
# capped so a bogus header cannot stop traffic for hours.
DEFAULT_PAUSE = 1.0
MAX_PAUSE = 300.0
MAX_PAUSED_MODELS = 1024  # models paused by an upstream 429 at once, per provider


class Scope:
    """One quota: a provider or a model on it."""

    __slots__ = ("name", "paused_until", "rpm", "tpm")

    def __init__(self, name: str) -> None:
        self.name = name
        self.rpm: Bucket | None = None
        self.tpm: Bucket | None = None
        self.paused_until = 0.0

    def wait(self, now: float, tokens: int, share: float) -> float:
        w = self.paused_until - now if self.paused_until > now else 0.0
        if self.rpm is not None:
            w = max(w, self.rpm.wait(now, 1, share))
        if self.tpm is not None and tokens:
            w = max(w, self.tpm.wait(now, tokens, share))
        return w

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(slots=True)
class Charge:
    """Tokens taken from one quota by one attempt, settled to the real count later."""

    bucket: Bucket
    tokens: float


@dataclass(eq=False, slots=True)
class Waiter:
    rank: int
    seq: int
    scopes: list[Scope]
    tokens: int
    share: float
    future: asyncio.Future[list[Charge]]
    eta: float = 0.0
    charges: list[Charge] = field(default_factory=list)

    def __lt__(self, other: Waiter) -> bool:
        return (self.rank, self.seq) < (other.rank, other.seq)


class Gate:
    """One provider: its own quota, its models' quotas and pauses, and the queue."""

    def __init__(self, provider: str) -> None:
        self.provider = Scope(provider)
        self.models: dict[str, Scope] = {}
        self.waiters: list[Waiter] = []
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def scopes(self, model: str) -> list[Scope]:
        out = [self.provider] if self.provider.active else []
        scope = self.models.get(model)
        if scope is not None:
            out.append(scope)
        return out


class Quotas:
    def __init__(self, config: Config, counters: Counters, clock: Callable[[], float]) -> None:
        self.counters = counters
        self.clock = clock
        self.max_wait = config.limits.queue_max_wait
        self.low_share = config.limits.low_priority_share
        self.gates: dict[str, Gate] = {}
        self._seq = itertools.count()
        now = clock()
        for q in config.quotas.values():
            gate = self._gate(q.provider)
            scope = (
                gate.provider if q.model is None else gate.models.setdefault(q.model, Scope(q.name))
            )
            if q.rpm is not None:
                scope.rpm = counters.bucket(f"quota:{q.name}:rpm", q.rpm, now)
            if q.tpm is not None:
                scope.tpm = counters.bucket(f"quota:{q.name}:tpm", q.tpm, now)

    def _gate(self, provider: str) -> Gate:
        gate = self.gates.get(provider)
        if gate is None:
            gate = self.gates[provider] = Gate(provider)
        return gate

    async def acquire(self, provider: str, model: str, priority: str, tokens: int) -> list[Charge]:
        """Wait for room under every quota of (provider, model); returns the charges."""
        gate = self.gates.get(provider)
        if gate is None:
            return []
        scopes = gate.scopes(model)
        if not scopes:
            return []
        rank = RANK.get(priority, 1)
        share = self.low_share if rank == 2 else 1.0
        now = self.clock()
        if not gate.waiters and all(s.wait(now, tokens, share) <= 0 for s in scopes):
            return self._take(scopes, tokens, now)  # the common case: room, nobody queued
        loop = asyncio.get_running_loop()
        waiter = Waiter(rank, next(self._seq), scopes, tokens, share, loop.create_future())
        bisect.insort(gate.waiters, waiter)
        self._pump(gate)
        if waiter.future.done():
            return waiter.future.result()
        if waiter.eta - now > self.max_wait:
            self._leave(gate, waiter)
            raise quota_wait_too_long(provider, model, waiter.eta - now, self.max_wait)
        try:
            async with asyncio.timeout(self.max_wait):
                return await waiter.future
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return waiter.future.result()  # granted as the time ran out
            self._leave(gate, waiter)
            eta = waiter.eta - self.clock() if waiter.eta else 1.0
            raise quota_wait_too_long(provider, model, eta, self.max_wait) from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.refund(waiter.future.result())
            self._leave(gate, waiter)
            raise

    def refund(self, charges: list[Charge]) -> None:
        now = self.clock()
        for c in charges:
            c.bucket.adjust(now, -c.tokens)
            self.counters.dirty.add(c.bucket)

    def _take(self, scopes: list[Scope], tokens: int, now: float) -> list[Charge]:
        charges: list[Charge] = []
        dirty = self.counters.dirty
        for s in scopes:
            if s.rpm is not None:
                s.rpm.take(now, 1)
                dirty.add(s.rpm)
            if s.tpm is not None and tokens:
                charges.append(Charge(s.tpm, s.tpm.take(now, tokens)))
                dirty.add(s.tpm)
        return charges

    def _leave(self, gate: Gate, waiter: Waiter) -> None:
        if waiter in gate.waiters:
            gate.waiters.remove(waiter)
            # Whoever it was holding back may go now.
            asyncio.get_running_loop().call_soon(self._pump, gate)

    def _pump(self, gate: Gate) -> None:
        """Grant waiters in priority order while there is room; re-arm the timer."""
        now = self.clock()
        blocked: set[Scope] = set()
        keep: list[Waiter] = []
        earliest = math.inf
        waiters = gate.waiters
        for i, w in enumerate(waiters):
            if w.future.done():
                continue
            if gate.provider in blocked:  # everything else waits behind the provider quota
                keep.extend(x for x in waiters[i:] if not x.future.done())
                break
            if blocked and any(s in blocked for s in w.scopes):
                keep.append(w)
                continue
            waits = [s.wait(now, w.tokens, w.share) for s in w.scopes]
            longest = max(waits)
            if longest <= 0:
                w.future.set_result(self._take(w.scopes, w.tokens, now))
                continue
            w.eta = now + longest
            earliest = min(earliest, w.eta)
            blocked.update(s for s, t in zip(w.scopes, waits, strict=True) if t > 0)
            keep.append(w)
        gate.waiters = keep
        if not keep:
            if gate.timer is not None:
                gate.timer.cancel()
                gate.timer, gate.timer_at = None, math.inf
            return
        if earliest == math.inf:
            earliest = now + 0.05  # only skipped waiters left: look again shortly
        if gate.timer is None or earliest < gate.timer_at or gate.timer_at <= now:
            if gate.timer is not None:
                gate.timer.cancel()
            loop = asyncio.get_running_loop()
            gate.timer = loop.call_later(max(0.0, earliest - now), self._fire, gate)
            gate.timer_at = earliest

    def _fire(self, gate: Gate) -> None:
        gate.timer, gate.timer_at = None, math.inf
        self._pump(gate)

    def feedback(self, provider: str, model: str, status: int, retry_after: str | None) -> None:
        """An upstream 429 pauses (provider, model) for its Retry-After."""
        if status != 429:
            return
        now = self.clock()
        seconds = retry_after_seconds(retry_after, now)
        pause = min(MAX_PAUSE, DEFAULT_PAUSE if seconds is None else seconds)
        gate = self._gate(provider)
        scope = gate.models.get(model)
        if scope is None:
            # A pause-only scope is keyed by a client-chosen name: expired ones go, and
            # a long name or a full table is not paused (the provider still refuses it).
            models = gate.models
            for name in [m for m, s in models.items() if not s.active and s.paused_until <= now]:
                del models[name]
            if len(model) > MAX_KEY or len(models) >= MAX_PAUSED_MODELS:
                return
            scope = models[model] = Scope(f"{provider}/{model}")
        until = now + pause
        if until > scope.paused_until:
            if scope.paused_until <= now:
                log.warning(
                    "provider %s answered 429 for %s; pausing that model for %.1f s",
                    provider,
                    model,
                    pause,
                )
            scope.paused_until = until
        if gate.waiters:
            self._pump(gate)

    def queued(self) -> int:
        """Calls waiting for a quota right now (for tests and metrics)."""
        return sum(len(g.waiters) for g in self.gates.values())
