"""The request lifecycle: an ordered list of steps over one per-request context.

Every proxied call walks the same steps, in this order (:func:`build`):

1. authenticate -- gateway key -> key record (401)
2. body         -- read and parse the request body (413, 415, 400)
3. route        -- model name -> the candidate targets (provider + upstream model) in
                   the route's order (404, 403 for a model the key may not use).
                   Routing comes before admission because the budget reservation
                   needs the candidates' prices.
4. admit        -- rate limits and budgets, worst case reserved up front (429)
5. scrub        -- PII and secrets redacted (put back in the answer), blocked (400)
                   or counted
6. cache        -- replay an identical earlier answer (wraps forward; coalesces misses)
7. forward      -- attempts over the candidates (retries, failover before the first
                   byte, circuit breakers); relay or translate, commit the ledger row

A step is an async callable over the :class:`Context`, built once at start-up with
the collaborators it uses; it refuses by raising :class:`GatewayError`, and the step
that answers sets ``ctx.response``. :meth:`Pipeline.run` records a refusal (when the
call is billed and the caller known) and renders it in the client's envelope. A new
step is one module and one line in :func:`build`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from aigw.cache.plans import Plans
from aigw.cache.store import ResponseCache
from aigw.config import Config
from aigw.directory import Directory
from aigw.drain import Drain
from aigw.errors import GatewayError, error_body
from aigw.headers import safe_headers
from aigw.limits.base import Limiter
from aigw.limits.permissions import ModelPermissions
from aigw.model import KeyRecord
from aigw.observe import access
from aigw.pipeline.account import Accountant
from aigw.pipeline.admit import admit, release
from aigw.pipeline.attempts import Attempts
from aigw.pipeline.authenticate import authenticate
from aigw.pipeline.body import ReadBody
from aigw.pipeline.cache import CacheStep
from aigw.pipeline.context import Context, base_headers, cost_header
from aigw.pipeline.count import CountTokens
from aigw.pipeline.embed import GeminiEmbed
from aigw.pipeline.forward import Forward
from aigw.pipeline.models import ListModels
from aigw.pipeline.relay import Relayer
from aigw.pipeline.route import Route, Router
from aigw.pipeline.scrub import Scrub
from aigw.pipeline.upstream import Upstream
from aigw.pricing import PriceBook
from aigw.routing.capabilities import CapabilityBook
from aigw.routing.health import Health
from aigw.routing.regions import Regions, allowed_regions

if TYPE_CHECKING:
    from aigw.observe.tracing import Tracing

log = logging.getLogger("aigw.handler")

Step = Callable[[Context], Awaitable[None]]


class Pipeline:
    """Runs its steps over a context; any refusal becomes the client's error answer."""

    def __init__(
        self,
        steps: Sequence[Step],
        accountant: Accountant,
        drain: Drain,
        tracing: Tracing | None = None,
    ) -> None:
        self.steps = tuple(steps)
        self.accountant = accountant
        self.drain = drain
        self.tracing = tracing

    async def run(self, ctx: Context) -> web.StreamResponse:
        tracing = self.tracing
        if tracing is not None:
            ctx.trace = tracing.start(ctx)
        try:
            for step in self.steps:
                await step(ctx)
            assert ctx.response is not None, "no step answered"
            return ctx.response
        except GatewayError as err:
            return await self.refuse(ctx, err)
        except asyncio.CancelledError:
            # Cut at shutdown: recorded, since the provider bills it (unless already done).
            if not self.drain.cutting or ctx.recorded:
                raise
            return await self.refuse(ctx, self.drain.cut(ctx))
        except Exception:
            return await self.refuse(ctx, internal_error(ctx))
        finally:
            # Settled by the accountant on the usual paths; this covers every other one.
            await release(ctx)
            # Where every request ends: its access line and its span.
            access.record(ctx)
            if tracing is not None:
                tracing.end(ctx.trace, ctx)

    async def refuse(self, ctx: Context, err: GatewayError) -> web.Response:
        """Record a refused or failed call (when billed and the caller is known) and
        render the error."""
        ctx.status, ctx.error = err.status, err.message
        metrics = self.accountant.metrics
        if metrics is not None and err.status in (403, 429) and not ctx.upstream_called:
            metrics.refused(ctx.key.team if ctx.key else None, err.code, err.type)
        if ctx.key is not None and ctx.billed:
            try:
                await self.accountant.record(ctx)
            except GatewayError:
                log.error("request %s: could not record the failed call", ctx.request_id)
        elif ctx.billed and not ctx.recorded:  # unknown caller (401): an audit event only
            await self.accountant.record_refusal(ctx)
        headers = {**base_headers(ctx), **safe_headers(err.headers)}
        if ctx.target is not None:
            headers["x-aigw-cost-usd"] = cost_header(ctx)
        return web.Response(
            status=err.status,
            body=error_body(err, ctx.wire),
            content_type="application/json",
            headers=headers,
        )


def internal_error(ctx: Context) -> GatewayError:
    log.exception("request %s failed", ctx.request_id)
    return GatewayError(
        500,
        f"Internal gateway error (request id {ctx.request_id}).",
        type="server_error",
        code="internal_error",
    )


@dataclass(frozen=True, slots=True)
class Pipelines:
    """The step lists the endpoints run."""

    proxy: Pipeline  # chat, messages, generateContent, embeddings, responses
    gemini_embed: Pipeline  # Gemini's embedContent, batchEmbedContents: STEPS too
    count_tokens: Pipeline  # not admitted, not billed
    models: Pipeline  # the model listings (OpenAI, Anthropic, Gemini)


PIPELINES = web.AppKey("pipelines", Pipelines)


def build(
    config: Config,
    directory: Directory,
    router: Router,
    limiter: Limiter,
    permissions: ModelPermissions,
    prices: PriceBook,
    accountant: Accountant,
    drain: Drain,
    health: Health,
    cache: ResponseCache | None = None,
    tracing: Tracing | None = None,
) -> Pipelines:
    """The steps, built once with their collaborators."""

    async def authenticate_step(ctx: Context) -> None:
        assert ctx.request is not None
        ctx.key = key = await authenticate(directory, ctx.request)
        ctx.team = team = directory.team(key.team)
        if team is not None and team.body_retention is not None:
            ctx.body_retention = team.body_retention  # the audit log keeps the bodies

    async def admit_step(ctx: Context) -> None:
        await admit(ctx, limiter, prices)

    def allows_model(key: KeyRecord, model: str) -> bool:
        return permissions.allows(key, directory.team(key.team), model)

    upstream = Upstream(config.upstream, limiter)
    # Hit plans: a repeated call answered from the cache skips body, route and scrub.
    plans = Plans()
    body = ReadBody(config.server, plans)

    def regions_of(key: KeyRecord) -> Regions:
        return allowed_regions(key, directory.team(key.team))

    route = Route(router, allows_model, prices, health, regions_of, CapabilityBook(prices))
    attempts = Attempts(config.routing, health, prices, tracing)
    forward = Forward(
        config.translation,
        upstream,
        Relayer(config.upstream, accountant, drain),
        accountant,
        attempts,
        route.output_limit,
    )
    scrub = Scrub(config.scrub)
    steps: list[Step] = [  # STEPS: every proxied call walks these, in this order
        authenticate_step,
        body,
        route,
        admit_step,
        scrub,  # PII and secrets
        # cache: replay an identical earlier answer; wraps forward (so it is last)
        forward if cache is None else CacheStep(config.cache, cache, forward, plans),
    ]
    return Pipelines(
        proxy=Pipeline(steps, accountant, drain, tracing),
        # The same steps; only the last answers in Gemini's embeddings format.
        gemini_embed=Pipeline(
            [*steps[:-1], GeminiEmbed(upstream, accountant, attempts)],
            accountant,
            drain,
            tracing,
        ),
        count_tokens=Pipeline(
            [authenticate_step, body, route, scrub, CountTokens(config.translation, upstream)],
            accountant,
            drain,
            tracing,
        ),
        models=Pipeline(
            [authenticate_step, ListModels(router, allows_model)], accountant, drain, tracing
        ),
    )
