"""The attempt loop: one call tried at its candidate targets until one answers.

An attempt is one endpoint's "send to this target and answer the client"
(:class:`aigw.pipeline.forward.Forward`); it raises :class:`UpstreamFailed` when it
failed before anything reached the client. Then the loop decides (policy in
:mod:`aigw.routing.retry`):

* a failure that another attempt cannot fix (the request's own 4xx) goes to the
  client as it is;
* a short ``Retry-After`` is waited for and the same target tried again; a long one
  moves on to the next target, as does a target that rejected the gateway's key, and
  one that refused the connection while another candidate is left (nobody listens
  there: the call's attempts are better spent elsewhere);
* anything else moves on to the next candidate, round the list again when it has
  been tried, with exponential backoff and jitter before any target's second try;
* at most ``max_attempts`` attempts, none started after the call's ``deadline``.

A target whose circuit breaker is open is skipped without a wait. When every candidate
left is open, the call does not fail fast: breakers only ever skip a target while
another remains (Envoy's "panic mode"), so the open ones are tried anyway, soonest to
half-open first, under the same attempt limit, backoff and deadline; if they all fail
the client hears the last failure. A target that cannot take the request at all (a
translation refused it) is skipped too, unless no target can: then the client hears
why from the first.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from aigw.config import RoutingConfig
from aigw.config.capabilities import NO_CAPABILITIES
from aigw.errors import GatewayError
from aigw.pipeline.context import Attempt, Context
from aigw.pricing import PriceBook
from aigw.routing.constraints import check_target, no_target
from aigw.routing.health import Health
from aigw.routing.regions import region_allows
from aigw.routing.retry import UpstreamFailed, backoff, retry_after_seconds
from aigw.routing.targets import Target

if TYPE_CHECKING:
    from aigw.observe.tracing import Tracing

# One attempt at one target: (ctx, target, seconds left of the deadline).
SendOne = Callable[[Context, Target, float], Awaitable[web.StreamResponse]]

CIRCUIT_OPEN = "circuit_open"  # skipped: its breaker is open
MOVED_ON = "retry_after"  # skipped after a long Retry-After
UNSUPPORTED = "unsupported"  # skipped: it cannot take this request
OUT_OF_REGION = "region"  # skipped: outside the caller's regions

_NONE: set[str] = set()  # never added to: "no target dropped yet"


class Attempts:
    """Runs one call's attempts over its candidates (see the module docstring)."""

    def __init__(
        self,
        config: RoutingConfig,
        health: Health,
        prices: PriceBook,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.tracing = tracing  # a child span per attempt, when [otel] is on
        self.health = health
        self.prices = prices
        self.rng = random.Random(int.from_bytes(os.urandom(16), "big"))
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, ctx: Context, send: SendOne) -> None:
        """Try ``send`` at the candidates until one answers: its answer becomes
        ``ctx.response``. (Set here rather than by the caller so that the step can hand
        this coroutine on without awaiting it: one frame less for every resumption of
        a stream.)"""
        cfg, health = self.config, self.health
        if self.tracing is not None:
            send = self.tracing.attempts(send)
        cands: tuple[Target, ...] | list[Target] = ctx.candidates
        n = len(cands)
        route = ctx.route
        limit = route.max_attempts if route and route.max_attempts else cfg.max_attempts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.deadline
        at = 0  # index of the next candidate
        # Made on the first failure: the common call succeeds at once and needs neither.
        dropped: set[str] = _NONE  # targets not to try again in this call
        tried: dict[str, int] = {}
        opened: list[Target] | None = None  # skipped for an open breaker
        panic = False  # every candidate left was open: trying them anyway
        hold: tuple[str, float] | None = None  # a short Retry-After: (target, seconds)
        last: UpstreamFailed | None = None
        refused: GatewayError | None = None  # the first "cannot take this request"
        # The route step left out every target outside the caller's regions; checked
        # again here so no failover path can ever reach one (residency is never waived).
        regions = ctx.constraints.regions if ctx.constraints is not None else None
        while True:
            target = None
            for k in range(n):
                t = cands[(at + k) % n]
                if t.id in dropped:
                    continue
                if regions is not None and not region_allows(regions, t.provider.region):
                    if dropped is _NONE:
                        dropped = set()
                    dropped.add(t.id)
                    ctx.skipped.append((t, OUT_OF_REGION))
                    continue
                if not panic and not health.allow(t.id):
                    if dropped is _NONE:
                        dropped = set()
                    dropped.add(t.id)
                    if opened is None:
                        opened = []
                    opened.append(t)
                    ctx.skipped.append((t, CIRCUIT_OPEN))
                    continue
                target, at = t, (at + k) % n
                break
            if target is None:
                if last is None and refused is None and regions is not None and not panic:
                    out = [t for t in cands if not region_allows(regions, t.provider.region)]
                    if len(out) == n:
                        raise self._out_of_region(ctx, out)
                if opened and not panic:
                    # Panic mode (as Envoy's): breakers never leave a call with nothing
                    # to try. Go round the open targets, soonest to half-open first.
                    panic = True
                    cands = sorted(opened, key=lambda t: health.retry_in(t.id))
                    n, at = len(cands), 0
                    dropped.difference_update(t.id for t in cands)
                    ctx.skipped = [s for s in ctx.skipped if s[1] != CIRCUIT_OPEN]
                    continue
                raise last or refused or self._nothing_left(ctx)
            if tried and target.id in tried:
                # Another go at a target this call already tried: wait a little first.
                if hold is not None and hold[0] == target.id:
                    wait = hold[1]
                else:
                    wait = backoff(cfg, tried[target.id], self.rng)
                hold = None
                if loop.time() + wait >= deadline:
                    assert last is not None  # tried is not empty: something failed
                    raise last
                await self.sleep(wait)
            ctx.target = target
            ctx.first_byte = None
            ctx.upstream_request_id = None
            before = ctx.tries
            started = time.perf_counter()
            try:
                resp = await send(ctx, target, deadline - loop.time())
            except UpstreamFailed as failed:
                if dropped is _NONE:
                    dropped = set()
                self._failed(ctx, target, failed)
                last = failed
                if failed.unhealthy:
                    health.failure(target.id)
                if not failed.switchable or ctx.tries >= limit:
                    raise
                tried[target.id] = tried.get(target.id, 0) + 1
                seconds = retry_after_seconds(failed.retry_after)
                if (
                    not failed.retryable
                    or (seconds is not None and seconds > cfg.max_retry_after)
                    or (failed.refused and self._others_left(cands, dropped, target))
                ):
                    dropped.add(target.id)  # move on, and not back
                    if seconds is not None:
                        ctx.skipped.append((target, MOVED_ON))
                    at += 1
                elif seconds is not None:
                    hold = (target.id, seconds)  # short: the same target again, after it
                else:
                    at += 1  # the next candidate; a backoff first if it was tried
                if loop.time() >= deadline:
                    raise
                continue
            except GatewayError as err:
                if ctx.tries != before or n == 1:
                    raise  # it reached the provider, or there is nowhere else to go
                # The target cannot take this request (e.g. its translation refused it).
                refused = refused or err
                if dropped is _NONE:
                    dropped = set()
                dropped.add(target.id)
                ctx.skipped.append((target, f"{UNSUPPORTED}: {err.code or err.status}"))
                at += 1
                continue
            if ctx.status >= 500:  # a stream that broke after its first byte
                health.failure(target.id)
            else:
                first = ctx.first_byte
                health.success(target.id, (first or time.perf_counter()) - started)
            ctx.response = resp
            return

    @staticmethod
    def _others_left(
        cands: tuple[Target, ...] | list[Target], dropped: set[str], target: Target
    ) -> bool:
        """Whether a candidate other than ``target`` is still to be (re)tried."""
        return any(t.id not in dropped and t is not target for t in cands)

    def _failed(self, ctx: Context, target: Target, failed: UpstreamFailed) -> None:
        """Note a failed attempt, costed when the provider reported usage for it."""
        usage = failed.usage
        cost = None
        if usage is not None and usage.total_tokens:
            cost = self.prices.cost_nusd(target.provider.name, target.upstream_model, usage)
        ctx.attempts.append(
            Attempt(target.id, failed.status, failed.code, failed.kind, usage, cost)
        )

    def _out_of_region(self, ctx: Context, out: list[Target]) -> GatewayError:
        c = ctx.constraints
        assert c is not None
        skips = [
            check_target(c, t.provider.name, t.provider.region, None, NO_CAPABILITIES, None)
            for t in out
        ]
        return no_target([s for s in skips if s is not None], c)

    @staticmethod
    def _nothing_left(ctx: Context) -> GatewayError:
        """Not reached in practice (every target left was tried or refused the call);
        a clear 503 rather than an assertion if it ever is."""
        names = ", ".join(t.id for t in ctx.candidates)
        return GatewayError(
            503,
            f"No target of '{ctx.model}' could take this call ({names}).",
            type="server_error",
            code="upstream_unavailable",
        )
