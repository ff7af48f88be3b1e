"""Step 3, route: the caller's model name to the call's candidate targets, in order.

Route comes before admit: the budget reservation needs the candidates' prices. The
mapping lives in :mod:`aigw.routing.targets`, the per-call order in
:mod:`aigw.routing.strategy`; this step adds the key's permission and the request's
constraints (``ctx.constraints``: the caller's regions narrowed by the
``x-aigw-route`` header). Every target that may not or cannot serve the call
(:func:`aigw.routing.constraints.check_target`: region, the header's price ceiling, a
capability the model lacks) is left out before the strategy orders the rest, with its
reason in ``ctx.skipped`` (the ledger's ``routing``); when none is left the client gets
:func:`aigw.routing.constraints.no_target` (403 ``region_not_allowed``, 400 for a price
over the ceiling or a missing capability). The header's ``strategy`` replaces the
route's. ``ctx.target`` is the first candidate until the forward step's attempts move it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from aigw.config.capabilities import Capabilities
from aigw.errors import GatewayError
from aigw.formats import Call
from aigw.memo import Memo
from aigw.model import KeyRecord
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.routing.capabilities import CapabilityBook, requirements_for, surely_fits
from aigw.routing.constraints import (
    NO_CONSTRAINTS,
    ROUTE_HEADER,
    Constraints,
    Skip,
    check_target,
    constraints,
    no_target,
    parse_route_header,
)
from aigw.routing.health import Health
from aigw.routing.regions import Regions
from aigw.routing.strategy import order
from aigw.routing.targets import Permission, Router, Target, family_of

__all__ = ["Route", "Router", "Target", "family_of"]

# Endpoints whose calls are matched against the model's capabilities: a token count
# generates nothing, and an embeddings input's limit applies to each input alone.
_MATCHED = frozenset({"chat.completions", "messages", "generateContent", "responses"})


def _no_regions(_key: KeyRecord) -> Regions:
    return None


class Route:
    """The step: the caller's model to ``ctx.candidates`` (403 for a model the key may
    not use, or when no target may serve the call)."""

    def __init__(
        self,
        router: Router,
        allows_model: Permission,
        prices: PriceBook,
        health: Health,
        regions_of: Callable[[KeyRecord], Regions] = _no_regions,
        capabilities: CapabilityBook | None = None,
    ) -> None:
        self.router = router
        self.allows_model = allows_model
        self.prices = prices
        self.health = health
        self.regions_of = regions_of
        self.capabilities = capabilities
        self.rng = random.Random(int.from_bytes(os.urandom(16), "big"))
        # Keyed by client-chosen model names: bounded (aigw.memo).
        self._caps: Memo[tuple[str, str, Capabilities], Capabilities] = Memo(
            self._lookup, lambda k: len(k[0]) + len(k[1])
        )

    def _lookup(self, key: tuple[str, str, Capabilities]) -> Capabilities:
        assert self.capabilities is not None
        return self.capabilities.lookup(*key)

    def output_limit(self, target: Target) -> int | None:
        """The most output tokens ``target``'s model writes, when known."""
        if self.capabilities is None:
            return None
        caps = self._caps((target.provider.name, target.upstream_model, target.overrides))
        return caps.max_output_tokens

    async def __call__(self, ctx: Context) -> None:
        if ctx.plan is not None:
            return  # routed as the identical call it repeats (aigw.cache.plans)
        key, model = ctx.key, ctx.model
        assert key is not None and model is not None
        if not self.allows_model(key, model):
            raise GatewayError(
                403,
                f"This gateway key may not use the model '{model}'.",
                type="permission_error",
                code="model_not_allowed",
                param="model",
            )
        route = ctx.route = self.router.route(model)
        header = ctx.request.headers.get(ROUTE_HEADER) if ctx.request is not None else None
        c = constraints(self.regions_of(key), parse_route_header(header))
        ctx.constraints = c
        targets = route.targets
        call = ctx.call if self.capabilities is not None and ctx.endpoint in _MATCHED else None
        if c is not NO_CONSTRAINTS or call is not None:
            targets = self._fit(ctx, c, call, targets)
        if len(targets) == 1:  # the common case: nothing to order
            ctx.candidates = targets
        else:
            ctx.candidates, pricier = order(
                route,
                targets=targets,
                strategy=c.strategy or route.strategy,
                prices=self.prices.lookup,
                latency=self.health.latency,
                prompt_tokens=ctx.prompt_estimate,
                max_output=ctx.max_output,
                rng=self.rng,
            )
            ctx.skipped.extend(pricier)
        ctx.target = ctx.candidates[0]

    def _fit(
        self, ctx: Context, c: Constraints, call: Call | None, targets: tuple[Target, ...]
    ) -> tuple[Target, ...]:
        """The targets that may and can serve the call; the others go to ``ctx.skipped``
        with the reason. None left: the client's error."""
        if c is NO_CONSTRAINTS and call is not None:
            # The common case, kept cheap: no region or price to check, and models that
            # lack nothing a request could ask for and whose window holds the prompt.
            tokens = call.prompt_estimate
            for t in targets:
                caps = self._caps((t.provider.name, t.upstream_model, t.overrides))
                if not surely_fits(caps, tokens):
                    break
            else:
                return targets
        kept: list[Target] = []
        skips: list[Skip] = []
        book = self.capabilities
        for t in targets:
            provider = t.provider
            caps = self._caps((provider.name, t.upstream_model, t.overrides))
            req = requirements_for(call, caps) if call is not None else None
            price = None
            if c.max_cost_micro is not None and book is not None:
                price = book.prices.lookup(provider.name, t.upstream_model)
            skip = check_target(c, provider.name, provider.region, price, caps, req)
            if skip is None:
                kept.append(t)
            else:
                skips.append(skip)
                ctx.skipped.append((t, f"{skip.kind}: {skip.message}"))
        if not kept:
            raise no_target(skips, c)
        return targets if len(kept) == len(targets) else tuple(kept)
