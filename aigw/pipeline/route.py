"""Step 2, route: the caller's model name to a target (provider + upstream model).

Route comes before admit: the budget reservation needs the target's price. The
mapping itself lives in :mod:`aigw.routing`; this step adds the key's permission.
"""

from __future__ import annotations

from aigw.errors import GatewayError
from aigw.pipeline.context import Context
from aigw.routing.targets import Permission, Router, Target, family_of

__all__ = ["Route", "Router", "Target", "family_of"]


class Route:
    """The step: the caller's model to ``ctx.target`` (403 for a model the key may not use)."""

    def __init__(self, router: Router, allows_model: Permission) -> None:
        self.router = router
        self.allows_model = allows_model

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
        ctx.target = self.router.route(model)
