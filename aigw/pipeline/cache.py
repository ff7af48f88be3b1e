"""Step 5, cache: answer an identical earlier call from the response cache.

The step wraps forward. For a caller whose cache mode is off it hands the call to
forward at once (one attribute lookup per scope). Otherwise it keys the request as it
stands now, after scrubbing (:mod:`aigw.cache.key`), and

* on a hit replays the stored answer through forward's own answer path
  (:mod:`aigw.cache.replay`): its ledger row costs 0 and records what the original
  call cost in ``saved_nusd``;
* on a miss lets forward run with ``ctx.capture`` set: forward hands over the final
  answer (a stream only once it ended complete and its row is committed) and the
  cache keeps it;
* while a call for the same key is in flight, waits for it instead of calling
  upstream too (coalescing, streams included: a waiter gets the whole answer once it
  is complete). If that call fails, nothing is stored and each waiter tries again:
  one of them calls upstream, the others wait for it.

``x-aigw-cache`` says hit, miss (stored if it can be) or bypass (not looked up: the
call is not cacheable under the caller's mode, ``Cache-Control: no-cache``, or the
cache table failed). ``Cache-Control: no-store`` keeps the answer out;
``x-aigw-cache-ttl: SECONDS`` sets how long it is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import orjson

from aigw.cache.entry import HUB, RAW, Entry
from aigw.cache.key import CACHEABLE, SHARED, cache_key, deterministic, replayable
from aigw.cache.plans import Plans, fresh_call
from aigw.cache.replay import CorruptEntry, assemble, replay
from aigw.cache.store import BYPASS, ResponseCache
from aigw.config.cache import CacheConfig
from aigw.errors import bad_request
from aigw.pipeline.context import Context, StreamTap
from aigw.pipeline.forward import Forward
from aigw.providers.base import HubStream
from aigw.sse import Event

log = logging.getLogger("aigw.cache")

MAX_TTL = 10 * 365 * 86400
_ROUNDS = 3  # a waiter whose leader failed tries again at most this often


class _Tap:
    """Collects a relayed stream's hub chunks; stores the answer when it completes."""

    __slots__ = ("capture", "chunks", "hub", "ok")

    def __init__(self, capture: Capture, hub: HubStream) -> None:
        self.capture = capture
        self.hub = hub
        self.chunks: list[dict[str, Any]] = []
        self.ok = True

    def feed(self, event: Event) -> None:
        if self.ok:
            try:
                self.chunks.extend(self.hub.feed(event))
            except Exception:  # the relay reports a bad stream; here: just do not keep it
                self.ok = False

    def done(self, ctx: Context) -> None:
        if self.ok and self.chunks:
            self.capture.keep(ctx, HUB, orjson.dumps(assemble(self.chunks, ctx.usage)))


class Capture:
    """:class:`~aigw.pipeline.context.Capture` for one cacheable miss."""

    __slots__ = ("cache", "endpoint", "entry", "key", "model", "team", "ttl")

    def __init__(
        self, cache: ResponseCache, key: str, team: str, endpoint: str, model: str, ttl: int
    ) -> None:
        self.cache = cache
        self.key = key
        self.team = team
        self.endpoint = endpoint
        self.model = model
        self.ttl = ttl
        self.entry: Entry | None = None  # what was stored, for the waiters

    def json(self, ctx: Context, answer: dict[str, Any] | bytes) -> None:
        if isinstance(answer, bytes):
            self.keep(ctx, RAW, answer)
        else:
            self.keep(ctx, HUB, orjson.dumps(answer))

    def stream(self, ctx: Context) -> StreamTap | None:
        target = ctx.target
        if target is None:
            return None
        return _Tap(self, target.provider.adapter.hub_stream(target.upstream_model))

    def keep(self, ctx: Context, kind: str, body: bytes) -> None:
        if ctx.status != 200 or ctx.error is not None:
            return
        now = self.cache.clock()
        target = ctx.target
        entry = Entry(
            key=self.key,
            team=self.team,
            endpoint=self.endpoint,
            model=self.model,
            upstream=target.id if target is not None else None,
            kind=kind,
            body=body,
            usage=None if ctx.usage is None else orjson.dumps(ctx.usage),
            cost_nusd=ctx.cost_nusd,
            created=now,
            expires=now + self.ttl,
            last_used=now,
        )
        if self.cache.put(entry):
            self.entry = entry


def _cache_control(ctx: Context) -> tuple[bool, bool, int | None]:
    """(no-cache, no-store, x-aigw-cache-ttl) of the request."""
    request = ctx.request
    if request is None:
        return False, False, None
    headers = request.headers
    no_cache = no_store = False
    cc = headers.get("Cache-Control")
    if cc:
        directives = {d.strip().lower() for d in cc.split(",")}
        no_cache = "no-cache" in directives
        no_store = "no-store" in directives
    ttl = None
    raw = headers.get("x-aigw-cache-ttl")
    if raw is not None:
        text = raw.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_TTL:
            raise bad_request(
                f"x-aigw-cache-ttl must be a whole number of seconds from 0 to {MAX_TTL}.",
                code="invalid_cache_ttl",
            )
        ttl = int(text)
    return no_cache, no_store, ttl


class CacheStep:
    """The cache step, wrapping ``forward`` (see the module docstring)."""

    def __init__(
        self, config: CacheConfig, cache: ResponseCache, forward: Forward, plans: Plans
    ) -> None:
        self.config = config
        self.cache = cache
        self.forward = forward
        self.plans = plans
        self.flights: dict[str, asyncio.Future[Entry | None]] = {}
        self.partition_shared = config.shared
        self.waiting = 0  # calls waiting for an identical one in flight

    def __call__(self, ctx: Context) -> Awaitable[None]:
        key = ctx.key
        assert key is not None
        mode = key.limits.cache
        if mode is None:
            team = ctx.team
            mode = (team.limits.cache if team is not None else None) or self.config.mode
        if mode == "off":
            return self.forward(ctx)  # not awaited here: one frame less (Forward.__call__)
        return self._cached(ctx, mode)

    def _ttl(self, ctx: Context) -> int:
        key = ctx.key
        assert key is not None
        if key.limits.cache_ttl is not None:
            return key.limits.cache_ttl
        team = ctx.team
        if team is not None and team.limits.cache_ttl is not None:
            return team.limits.cache_ttl
        return self.config.ttl

    async def _cached(self, ctx: Context, mode: str) -> None:
        plan = ctx.plan
        if plan is not None:  # an identical call was answered from the cache before
            _, entry = await self.cache.get(plan.cache_key)
            if entry is not None and await self._hit(ctx, entry):
                return
            self.plans.forget(plan)
            fresh_call(ctx)  # and on the usual way
        call, key = ctx.call, ctx.key
        assert call is not None and key is not None
        body = call.body
        if (
            ctx.endpoint not in CACHEABLE
            or call.array
            or (mode == "deterministic" and not deterministic(ctx.endpoint, body))
            or not replayable(ctx.endpoint, body)
        ):
            ctx.cache = BYPASS
            await self.forward(ctx)
            return
        no_cache, no_store, ttl = _cache_control(ctx)
        model = ctx.model or call.model
        partition = SHARED if self.partition_shared else key.team
        k = cache_key(partition, ctx.endpoint, model, body)
        status = BYPASS if no_cache else "miss"
        if not no_cache:
            for _ in range(_ROUNDS):
                status, entry = await self.cache.get(k)
                if entry is not None:
                    plan = self.plans.make(ctx, k)  # as the steps left it, before the hit
                    if await self._hit(ctx, entry):
                        if plan is not None:
                            self.plans.add(plan)
                        return
                    status = BYPASS  # corrupt: dropped, and this call goes upstream
                flight = self.flights.get(k)
                if flight is None:
                    break
                self.waiting += 1
                try:
                    entry = await asyncio.shield(flight)
                finally:
                    self.waiting -= 1
                if entry is not None and await self._hit(ctx, entry):
                    return
        ctx.cache = status
        if ttl is None:
            ttl = self._ttl(ctx)
        capture = None
        if not no_store and ttl > 0:
            capture = Capture(self.cache, k, key.team, ctx.endpoint, model, ttl)
        leads = k not in self.flights
        fut: asyncio.Future[Entry | None] | None = None
        if leads:
            fut = asyncio.get_running_loop().create_future()
            self.flights[k] = fut
        ctx.capture = capture
        try:
            await self.forward(ctx)
        finally:
            ctx.capture = None
            if fut is not None:
                del self.flights[k]
                fut.set_result(capture.entry if capture is not None else None)

    async def _hit(self, ctx: Context, entry: Entry) -> bool:
        """Replay ``entry``; False (and the entry dropped) if it is corrupt."""
        target = ctx.target
        # No provider answers a hit: none is named, and nothing is priced (cost 0).
        ctx.cache, ctx.saved_nusd, ctx.target = "hit", entry.cost_nusd or 0, None
        try:
            ctx.response = await replay(self.forward, ctx, entry)
        except CorruptEntry as exc:  # raised before anything was recorded or sent
            log.warning("response cache: dropped a corrupt answer (%s)", exc)
            ctx.cache, ctx.saved_nusd, ctx.target = None, 0, target
            self.cache.discard(entry.key)
            return False
        return True
