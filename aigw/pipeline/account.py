"""Usage -> cost -> ledger and audit, committed before the client sees the end of the response.

Rows from concurrent requests share one commit: the ledger is a
:class:`~aigw.store.writer.GroupWriter` over the store's ``append_many``
(see :mod:`aigw.store.writer` for the batching and its cancellation safety). A
call's audit event (and, for a team that opted in, its bodies) go in the same
append, so they are committed in the same transaction as its ledger row.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from aigw.audit import call_event
from aigw.errors import GatewayError
from aigw.headers import header_value
from aigw.model import AuditBody, AuditEvent, LedgerRecord, LedgerRow
from aigw.observe.metrics import Metrics
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.providers.base import redact
from aigw.store.writer import GroupWriter
from aigw.usage import Usage

log = logging.getLogger("aigw.audit")

# An answer kept for the audit log is cut here (a stream may be long).
MAX_ANSWER_BYTES = 8 * 1024 * 1024


def audit_event(ctx: Context, row: LedgerRow | None = None) -> AuditEvent:
    """The audit event of a proxied call: its ledger row's facts and the scrub counts."""
    scrub = (
        orjson.dumps(ctx.scrub_counts, option=orjson.OPT_SORT_KEYS).decode()
        if ctx.scrub_counts
        else None
    )
    if row is None:  # refused before the caller was known (401)
        return AuditEvent(
            ts=ctx.ts,
            kind="proxy",
            request_id=ctx.request_id,
            endpoint=ctx.endpoint,
            model=ctx.model,
            status=ctx.status,
            error=ctx.error,
            scrub=scrub,
        )
    return call_event(row, scrub)


def audit_body(ctx: Context) -> AuditBody | None:
    """The bodies to keep, for a team that opted in and a call that went upstream."""
    if ctx.body_retention is None or ctx.sent_body is None:
        return None
    secrets = ctx.target.provider.secrets if ctx.target else None
    answer: str | None = None
    if ctx.answer_chunks:
        raw = b"".join(ctx.answer_chunks)[:MAX_ANSWER_BYTES]
        answer = redact(raw.decode("utf-8", "replace"), secrets)
    sent = ctx.sent_body
    request = sent.decode("utf-8", "replace") if isinstance(sent, bytes) else None
    if request is None:
        request = orjson.dumps(sent, default=str).decode()
    return AuditBody(
        request_id=ctx.request_id,
        team=ctx.key.team if ctx.key else None,
        ts=ctx.ts,
        expires_at=ctx.ts + ctx.body_retention,
        request=redact(request, secrets),
        answer=answer,
    )


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
        self,
        writer: GroupWriter[LedgerRecord],
        prices: PriceBook,
        metrics: Metrics | None = None,
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
        """Price the call, settle its admission lease and commit its row (the row is
        committed when this returns).

        Raises GatewayError(503) if the row cannot be committed.
        """
        self.cost(ctx)
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
        body = audit_body(ctx)
        rows = (row, audit_event(ctx, row)) + (() if body is None else (body,))
        committed: asyncio.Future[None] | None = None
        failed: Exception | None = None
        try:
            committed = self.writer.submit(*rows)
        except Exception as exc:
            failed = exc
        # The lease settles (a round trip to Redis when the counters are shared) while
        # the row commits: the two waits overlap instead of adding up.
        if ctx.lease is not None:
            try:
                await ctx.lease.settle(ctx.usage, ctx.cost_nusd)
            except BaseException:
                if committed is not None:
                    committed.cancel()  # the row is still committed, nobody waits
                raise
        try:
            if failed is not None:
                raise failed
            assert committed is not None
            await committed
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

    async def record_refusal(self, ctx: Context) -> None:
        """The audit event of a call refused before its caller was known (no ledger row:
        nobody to bill). A failure to write it is logged, the refusal still answered."""
        try:
            await self.writer.append(audit_event(ctx))
        except Exception:
            log.error("request %s: could not write the audit event", ctx.request_id)
