"""Provider quotas counted in Redis for every gateway process: :class:`SharedQuotas`.

The capacity is global: one Lua script per upstream call (:data:`aigw.limits.lua.QUOTA`,
one round trip) checks and takes the call's request and estimated tokens from every
quota it falls under (the provider's and the model's) and honours a pause set by an
upstream 429 in any process. Low priority may use only ``low_priority_share`` of a
quota, in the script too, so high-priority traffic finds headroom across processes.

Waiting is local: each process queues its own calls per (provider, model) by priority
(first come first served within one); only the head of a queue asks Redis, and when
the script answers "wait N seconds" it sleeps that long and asks again. A wait longer
than ``queue_max_wait`` is a 429 at once, as in process. Unlike the in-process queue,
the order holds within one process, not between processes (their calls meet in Redis).

Providers without a declared quota are not counted here: a 429 from them pauses the
model in the process that saw it only (:mod:`aigw.limits.quotas`).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from aigw.config import Config
from aigw.limits import lua
from aigw.limits.alerts import retry_after_seconds
from aigw.limits.gcra import Bucket
from aigw.limits.quotas import DEFAULT_PAUSE, MAX_PAUSE, RANK
from aigw.limits.refusals import quota_wait_too_long
from aigw.memo import MAX_KEY

log = logging.getLogger("aigw.quotas")


@dataclass(slots=True)
class QuotaCharge:
    """Tokens one attempt took from a quota's tokens per minute (settled later)."""

    key: str  # the TAT key in Redis
    interval: float
    tokens: float


@dataclass(slots=True)
class _Quota:
    rpm: Bucket | None
    tpm: Bucket | None
    keys: list[str]  # rpm TAT, tpm TAT, paused-until


@dataclass(eq=False, slots=True)
class _Waiter:
    rank: int
    seq: int
    turn: asyncio.Event = field(default_factory=asyncio.Event)

    def __lt__(self, other: _Waiter) -> bool:
        return (self.rank, self.seq) < (other.rank, other.seq)


class SharedQuotas:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        config: Config,
        script: Callable[[str], Callable[..., Awaitable[Any]]] | None = None,
    ) -> None:
        """``script``: makes a script callable (the limiter's own Redis connection,
        :mod:`aigw.limits.wire`); None: redis-py's ``register_script``."""
        self.redis = client
        self.prefix = prefix
        self.max_wait = config.limits.queue_max_wait
        self.low_share = config.limits.low_priority_share
        burst = config.limits.burst
        self.quotas: dict[str, _Quota] = {}
        for q in config.quotas.values():
            keys = [f"{prefix}quota:{q.name}:{w}" for w in ("rpm", "tpm", "pause")]
            self.quotas[q.name] = _Quota(
                Bucket(keys[0], q.rpm, burst) if q.rpm is not None else None,
                Bucket(keys[1], q.tpm, burst) if q.tpm is not None else None,
                keys,
            )
        self.providers = {q.provider for q in config.quotas.values()}
        self.queues: dict[tuple[str, str], list[_Waiter]] = {}
        make = script if script is not None else client.register_script
        self._script = make(lua.QUOTA)
        self._pause = make(lua.PAUSE)
        self._seq = itertools.count()

    def _scopes(self, provider: str, model: str) -> list[_Quota]:
        """The provider's quota and the model's; a model without one still gets its
        pause key (a 429 from the provider pauses just that model)."""
        out = []
        q = self.quotas.get(provider)
        if q is not None:
            out.append(q)
        name = f"{provider}/{model}"
        q = self.quotas.get(name)
        if q is None:
            pause = self._pause_key(provider, model)
            q = _Quota(None, None, [pause, pause, pause])
        out.append(q)
        return out

    def _pause_key(self, provider: str, model: str) -> str:
        return f"{self.prefix}quota:{provider}/{model[:MAX_KEY]}:pause"

    async def acquire(
        self, provider: str, model: str, priority: str, tokens: int
    ) -> list[QuotaCharge]:
        """Wait for room under every quota of (provider, model); returns the charges.
        Raises GatewayError 429 when the wait would pass ``queue_max_wait``, and the
        Redis errors for the caller to handle."""
        rank = RANK.get(priority, 1)
        share = self.low_share if rank == 2 else 1.0
        scopes = self._scopes(provider, model)
        keys: list[str] = []
        args: list[float] = [tokens, share, len(scopes)]
        for q in scopes:
            keys += q.keys
            for b in (q.rpm, q.tpm):
                args += [b.limit, b.capacity] if b is not None else [0, 0]
        queue = self.queues.setdefault((provider, model), [])
        me = _Waiter(rank, next(self._seq))
        bisect.insort(queue, me)
        deadline = time.monotonic() + self.max_wait
        try:
            while True:
                if queue[0] is not me:
                    me.turn.clear()
                    left = deadline - time.monotonic()
                    try:
                        async with asyncio.timeout(max(left, 0.0)):
                            await me.turn.wait()
                    except TimeoutError:
                        raise quota_wait_too_long(provider, model, 1.0, self.max_wait) from None
                    continue
                reply = await self._script(keys=keys, args=args)
                if reply[0] == "ok":
                    return [
                        QuotaCharge(q.tpm.id, q.tpm.interval, float(t))
                        for q, t in zip(scopes, reply[1:], strict=True)
                        if q.tpm is not None and float(t)
                    ]
                wait = float(reply[1])
                if time.monotonic() + wait > deadline:
                    raise quota_wait_too_long(provider, model, wait, self.max_wait)
                await asyncio.sleep(wait)
        finally:
            queue.remove(me)
            if queue:
                queue[0].turn.set()  # the next in line asks Redis now
            else:
                del self.queues[(provider, model)]

    async def pause(self, provider: str, model: str, retry_after: str | None) -> None:
        """An upstream 429 pauses (provider, model) for its Retry-After, in every process."""
        seconds = retry_after_seconds(retry_after, time.time())
        pause = min(MAX_PAUSE, DEFAULT_PAUSE if seconds is None else seconds)
        if pause <= 0:
            return
        if await self._pause(keys=[self._pause_key(provider, model)], args=[pause]):
            log.warning(
                "provider %s answered 429 for %s; pausing that model for %.1f s "
                "(every gateway process)",
                provider,
                model,
                pause,
            )
