"""Step 3, route: the caller's model name to the call's candidate targets, in order.

Route comes before admit: the budget reservation needs the candidates' prices. The
mapping lives in :mod:`aigw.routing.targets`, the per-call order in
:mod:`aigw.routing.strategy`; this step adds the key's permission. ``ctx.target`` is
the first candidate until the forward step's attempts move it.
"""

from __future__ import annotations

import os
import random

from aigw.errors import GatewayError
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.routing.health import Health
from aigw.routing.strategy import order
from aigw.routing.targets import Permission, Router, Target, family_of

__all__ = ["Route", "Router", "Target", "family_of"]


class Route:
    """The step: the caller's model to ``ctx.candidates`` (403 for a model the key may
    not use)."""

    def __init__(
        self, router: Router, allows_model: Permission, prices: PriceBook, health: Health
    ) -> None:
        self.router = router
        self.allows_model = allows_model
        self.prices = prices
        self.health = health
        self.rng = random.Random(int.from_bytes(os.urandom(16), "big"))

    async def __call__(self, ctx: Context) -> None:
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
        if len(route.targets) == 1:  # the common case: nothing to order
            ctx.candidates = route.targets
        else:
            ctx.candidates, ctx.skipped = order(
                route,
                prices=self.prices.lookup,
                latency=self.health.latency,
                prompt_tokens=ctx.prompt_estimate,
                max_output=ctx.max_output,
                rng=self.rng,
            )
        ctx.target = ctx.candidates[0]
