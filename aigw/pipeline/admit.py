"""Step 3, admit: rate limits, concurrency, budgets (429), through the limiter.

The step only gathers plain values from the context -- the key, its team from the
directory, the target's price, the token estimates -- and asks the
:class:`aigw.limits.base.Limiter`; the lease it gets back is settled by the accountant
when the call ends, or released by :func:`release` on every other way out.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from aigw.limits.base import Demand, Limiter
from aigw.pipeline.context import Context
from aigw.pricing import Price, PriceBook
from aigw.providers import Provider
from aigw.routing.strategy import call_cost
from aigw.routing.targets import Target


async def admit(ctx: Context, limiter: Limiter, prices: PriceBook) -> None:
    """Take capacity for the call in ``ctx`` (``ctx.lease``) or raise GatewayError."""
    key, target = ctx.key, ctx.target
    assert key is not None and target is not None
    price = prices.lookup(target.provider.name, target.upstream_model)
    if len(ctx.candidates) > 1:
        target, price = _dearest(ctx, prices)
    provider = target.provider
    demand = Demand(
        model=ctx.model or "",
        provider=provider.name,
        provider_type=provider.type,
        upstream_model=target.upstream_model,
        price=price,
        prompt_tokens=ctx.prompt_estimate,
        prompt_bound=ctx.prompt_bound,
        max_output=ctx.max_output,
        ts=ctx.ts,
    )
    ctx.lease = await limiter.admit(key, ctx.team, demand)


def _dearest(ctx: Context, prices: PriceBook) -> tuple[Target, Price | None]:
    """The candidate the call could cost the most at, and its price.

    Failover may end at any candidate, so the budget reservation is made for the
    dearest one; an unpriced candidate counts as dearest (the unpriced policy
    applies). The real cost of the target that answered replaces it at settling.
    """
    worst: tuple[Target, Price | None] | None = None
    worst_cost = -1
    for t in ctx.candidates:
        price = prices.lookup(t.provider.name, t.upstream_model)
        if price is None:
            return t, None
        cost = call_cost(price, ctx.prompt_bound, ctx.max_output or 4096) or 0
        if cost > worst_cost:
            worst, worst_cost = (t, price), cost
    assert worst is not None
    return worst


async def release(ctx: Context) -> None:
    """Give back what the call still holds (nothing, once the accountant settled it)."""
    if ctx.lease is not None:
        await ctx.lease.release()


_NO_SLOT = nullcontext()


def upstream_slot(ctx: Context, provider: Provider) -> AbstractAsyncContextManager[None]:
    """Wait (by priority) for the provider's quota before calling it."""
    lease, target = ctx.lease, ctx.target
    if lease is None or target is None:
        return _NO_SLOT  # count_tokens: free, not admitted
    return lease.upstream_slot(provider.name, _model(ctx, provider))


async def upstream_feedback(
    limiter: Limiter, ctx: Context, provider: Provider, status: int, retry_after: str | None
) -> None:
    """Let the limiter learn from the provider's answer (a 429 pauses that model)."""
    if status == 429:
        await limiter.upstream_feedback(provider.name, _model(ctx, provider), status, retry_after)


def _model(ctx: Context, provider: Provider) -> str:
    target = ctx.target
    return target.upstream_model if target is not None and target.provider is provider else ""
