"""Step 2, route: the caller's model name to a target (provider + upstream model).

Route comes before admit: the budget reservation needs the target's price. The
mapping itself lives in :mod:`aigw.routing`; this step adds the key's permission and
the request's constraints (``ctx.constraints``: the caller's regions narrowed by the
``x-aigw-route`` header), and refuses a target that may not or cannot serve the call
(:func:`aigw.routing.constraints.check_target`): 403 ``region_not_allowed``, 400 for
a price over the header's ceiling or a capability the model lacks.
"""

from __future__ import annotations

from collections.abc import Callable

from aigw.config.capabilities import Capabilities
from aigw.errors import GatewayError
from aigw.memo import Memo
from aigw.model import KeyRecord
from aigw.pipeline.context import Context
from aigw.routing.capabilities import CapabilityBook, requirements_for
from aigw.routing.constraints import (
    NO_CONSTRAINTS,
    ROUTE_HEADER,
    check_target,
    constraints,
    no_target,
    parse_route_header,
)
from aigw.routing.regions import Regions
from aigw.routing.targets import Permission, Router, Target, family_of

__all__ = ["Route", "Router", "Target", "family_of"]

# Endpoints whose calls are matched against the model's capabilities: a token count
# generates nothing, and an embeddings input's limit applies to each input alone.
_MATCHED = frozenset({"chat.completions", "messages", "generateContent", "responses"})


def _no_regions(_key: KeyRecord) -> Regions:
    return None


class Route:
    """The step: the caller's model to ``ctx.target`` (403 for a model the key may not use)."""

    def __init__(
        self,
        router: Router,
        allows_model: Permission,
        regions_of: Callable[[KeyRecord], Regions] = _no_regions,
        capabilities: CapabilityBook | None = None,
    ) -> None:
        self.router = router
        self.allows_model = allows_model
        self.regions_of = regions_of
        self.capabilities = capabilities
        # Keyed by client-chosen model names: bounded (aigw.memo).
        self._caps: Memo[tuple[str, str, Capabilities], Capabilities] = Memo(
            self._lookup, lambda k: len(k[0]) + len(k[1])
        )

    def _lookup(self, key: tuple[str, str, Capabilities]) -> Capabilities:
        assert self.capabilities is not None
        return self.capabilities.lookup(*key)

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
        target = self.router.route(model)
        header = ctx.request.headers.get(ROUTE_HEADER) if ctx.request is not None else None
        c = constraints(self.regions_of(key), parse_route_header(header))
        ctx.constraints = c
        book, call = self.capabilities, ctx.call
        matched = book is not None and call is not None and ctx.endpoint in _MATCHED
        if c is not NO_CONSTRAINTS or matched:
            provider = target.provider
            caps = self._caps((provider.name, target.upstream_model, target.overrides))
            req = None
            if matched and call is not None:
                req = requirements_for(call, caps)
            price = None
            if c.max_cost_micro is not None and book is not None:
                price = book.prices.lookup(provider.name, target.upstream_model)
            skip = check_target(c, provider.name, provider.region, price, caps, req)
            if skip is not None:
                raise no_target([skip], c)
        ctx.target = target
