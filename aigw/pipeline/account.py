"""Usage -> cost -> ledger, committed before the client sees the end of the response.

Rows from concurrent requests share one commit (group commit): a request hands its
row to :class:`LedgerWriter` and waits; the writer takes everything that queued up
while the previous commit ran and writes it with one multi-row INSERT. Under load
that is one commit for many requests; alone, one thread hop and one commit.
"""

from __future__ import annotations

import asyncio
import logging

from aigw.errors import GatewayError
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.providers.base import redact
from aigw.store import Database
from aigw.store import ledger as ledger_store
from aigw.store.ledger import LedgerRow
from aigw.usage import Usage

log = logging.getLogger("aigw.ledger")


class LedgerWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[LedgerRow, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.commits = 0
        self.rows = 0

    async def append(self, row: LedgerRow) -> None:
        """Queue ``row`` and return once it is committed (raises if the commit failed)."""
        if self._closing:
            raise RuntimeError("the ledger is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, fut))
        self._wake.set()
        # The commit runs in the writer task: a cancelled request only cancels its own
        # future (the writer skips futures that are done), never the shared commit.
        await fut

    async def run(self) -> None:
        """The writer loop (a background task); returns after close() once drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._commit(batch)
            elif self._closing:
                return

    async def _commit(self, batch: list[tuple[LedgerRow, asyncio.Future[None]]]) -> None:
        try:
            await ledger_store.append_many(self.db, [row for row, _ in batch])
        except Exception as exc:
            log.exception("ledger commit of %d rows failed", len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.commits += 1
        self.rows += len(batch)
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def close(self) -> None:
        """Stop accepting rows; run() commits what is queued, then returns."""
        self._closing = True
        self._wake.set()


class Accountant:
    """Turns a finished context into a committed ledger row."""

    def __init__(self, writer: LedgerWriter, prices: PriceBook) -> None:
        self.writer = writer
        self.prices = prices

    def cost(self, ctx: Context) -> None:
        """Fill ``ctx.cost_nusd`` from its usage; None when the model has no price."""
        target, usage = ctx.target, ctx.usage
        if target is None or usage is None or usage.total_tokens == 0:
            ctx.cost_nusd = 0
            return
        ctx.cost_nusd = self.prices.cost_nusd(target.provider.name, target.upstream_model, usage)

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
            # The state file is a place the provider key must never reach.
            error=redact(ctx.error, target.provider.api_key if target else None)
            if ctx.error
            else ctx.error,
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
