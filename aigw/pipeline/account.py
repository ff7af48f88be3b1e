"""Usage -> cost -> ledger, committed before the client sees the end of the response.

Rows from concurrent requests share one commit: the ledger is a
:class:`~aigw.store.writer.GroupWriter` over the store's ``append_many``
(see :mod:`aigw.store.writer` for the batching and its cancellation safety).
"""

from __future__ import annotations

import orjson

from aigw.errors import GatewayError
from aigw.headers import header_value
from aigw.model import LedgerRow
from aigw.observe.metrics import Metrics
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.providers.base import redact
from aigw.store.writer import GroupWriter
from aigw.usage import Usage


def routing_log(ctx: Context) -> str:
    """Why the call went where it went, for the ledger: each failed attempt (target,
    status, error code, what failed, its cost if billed) and each target skipped."""
    failed = [
        {
            "target": a.target,
            "status": a.status,
            "code": a.code,
            "kind": a.kind,
            **({"cost_nusd": a.cost_nusd} if a.cost_nusd is not None else {}),
            **(
                {
                    "prompt_tokens": a.usage.prompt_tokens,
                    "completion_tokens": a.usage.completion_tokens,
                }
                if a.usage is not None
                else {}
            ),
        }
        for a in ctx.attempts
    ]
    skipped = [{"target": t.id, "reason": reason} for t, reason in ctx.skipped]
    return orjson.dumps({"failed": failed, "skipped": skipped}).decode()


class Accountant:
    """Turns a finished context into a committed ledger row."""

    def __init__(
        self, writer: GroupWriter[LedgerRow], prices: PriceBook, metrics: Metrics | None = None
    ) -> None:
        self.writer = writer
        self.prices = prices
        self.metrics = metrics  # in-memory counters for /metrics, fed once per row

    def cost(self, ctx: Context) -> None:
        """Fill ``ctx.cost_nusd`` from its usage, plus what failed attempts the provider
        billed cost; None when the model that answered has no price."""
        target, usage = ctx.target, ctx.usage
        cost: int | None = 0
        if target is not None and usage is not None and usage.total_tokens:
            cost = self.prices.cost_nusd(target.provider.name, target.upstream_model, usage)
        if ctx.attempts and cost is not None:
            cost += sum(a.cost_nusd or 0 for a in ctx.attempts)
        ctx.cost_nusd = cost

    async def record(self, ctx: Context) -> None:
        """Price the call, settle its admission lease and commit its row.

        Raises GatewayError(503) if the row cannot be committed.
        """
        self.cost(ctx)
        if ctx.lease is not None:
            await ctx.lease.settle(ctx.usage, ctx.cost_nusd)
        key, target = ctx.key, ctx.target
        u = ctx.usage or Usage()
        row = LedgerRow(
            ts=ctx.ts,
            request_id=ctx.request_id,
            key_id=key.id if key else None,
            team=key.team if key else None,
            app=key.app if key else None,
            endpoint=ctx.endpoint,
            model=ctx.model,
            provider=target.provider.name if target else None,
            upstream_model=target.upstream_model if target else None,
            status=ctx.status,
            stream=ctx.stream,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            cached_tokens=u.cached_tokens,
            cache_write_tokens=u.cache_write_tokens,
            reasoning_tokens=u.reasoning_tokens,
            usage_estimated=ctx.usage_estimated,
            cost_nusd=ctx.cost_nusd,
            latency_ms=ctx.latency_ms(),
            # Upstream text: bounded, like the header it is also sent in.
            upstream_request_id=header_value(ctx.upstream_request_id, 256)
            if ctx.upstream_request_id
            else None,
            # The state file is a place no provider key may reach.
            error=redact(ctx.error, target.provider.secrets if target else None)
            if ctx.error
            else ctx.error,
            attempts=ctx.tries,
            routing=routing_log(ctx) if ctx.attempts or ctx.skipped else None,
            cache=ctx.cache,
            saved_nusd=ctx.saved_nusd,
        )
        ctx.recorded = True
        try:
            await self.writer.append(row)
        except Exception as exc:
            raise GatewayError(
                503,
                "The gateway could not record this call in its ledger, so it is not "
                "returning the answer. Retry shortly.",
                type="server_error",
                code="ledger_unavailable",
            ) from exc
        if self.metrics is not None:
            first = ctx.first_byte
            self.metrics.record(row, None if first is None else first - ctx.started, ctx.attempts)
