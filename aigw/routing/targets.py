"""Model names to routes: the targets (provider + upstream model) that can serve a call.

``PROVIDER/MODEL`` goes to that provider with that upstream model; a config table
``[models.NAME]`` maps NAME to one or more targets and a strategy; a bare family name
(``gpt-*``, ``o1*``/``o3*``/``o4*``, ``text-embedding-*`` -> openai, ``claude-*`` ->
anthropic, ``gemini-*`` -> gemini) goes to the one provider of that type, if there is
exactly one. How a route's targets are ordered for one call is
:mod:`aigw.routing.strategy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aigw.config import Config
from aigw.config.capabilities import NO_CAPABILITIES, Capabilities
from aigw.errors import GatewayError
from aigw.headers import header_value
from aigw.memo import Memo
from aigw.model import KeyRecord
from aigw.providers import Provider

# Bare model names route without config to the one provider of their family.
_FAMILIES = (
    (("gpt-", "o1", "o3", "o4", "text-embedding-", "chatgpt-"), "openai"),
    (("claude-",), "anthropic"),
    (("gemini-",), "gemini"),
)


def family_of(model: str) -> str | None:
    """The provider type that serves a bare model name (gpt-4o -> openai), if known."""
    for prefixes, family in _FAMILIES:
        if model.startswith(prefixes):
            return family
    return None


# Whether a key may use a model (the key's and its team's model globs).
Permission = Callable[[KeyRecord, str], bool]


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    upstream_model: str
    weight: float = 1.0
    # The route's overrides of the shipped capability table ([models.NAME] tools = false,
    # or a targets entry's own).
    overrides: Capabilities = NO_CAPABILITIES
    # "provider/model": names the target's breaker and its entry in the ledger.
    id: str = field(default="", compare=False)
    # The upstream model as a header value, computed once (client-chosen names too).
    model_header: str = field(default="", compare=False)
    provider_header: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", f"{self.provider.name}/{self.upstream_model}")
        if not self.model_header:
            object.__setattr__(self, "model_header", header_value(self.upstream_model))
        if not self.provider_header:
            object.__setattr__(self, "provider_header", header_value(self.provider.name))


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """What a model name maps to: its targets, and how to order them per call."""

    name: str
    targets: tuple[Target, ...]
    strategy: str = "failover"
    allow_pricier_fallback: bool = False
    max_attempts: int | None = None  # None: [routing] max_attempts

    @property
    def first(self) -> Target:
        return self.targets[0]


class Router:
    def __init__(self, config: Config, providers: dict[str, Provider]) -> None:
        self.config = config
        self.providers = providers
        # Keyed by client-chosen model names: bounded in size (aigw.memo).
        self._memo: Memo[str, ModelRoute] = Memo(self._resolve, len)

    def route(self, model: str) -> ModelRoute:
        return self._memo(model)

    def routes(self) -> list[ModelRoute]:
        """Every configured route ([models.NAME]), by name."""
        return [self._resolve(name) for name in sorted(self.config.models)]

    def _resolve(self, model: str) -> ModelRoute:
        alias = self.config.models.get(model)
        if alias is not None:
            return ModelRoute(
                model,
                tuple(
                    Target(
                        self.providers[t.provider],
                        t.model,
                        t.weight,
                        t.capabilities.over(alias.capabilities),
                    )
                    for t in alias.targets
                ),
                alias.strategy,
                alias.allow_pricier_fallback,
                alias.max_attempts,
            )
        prefix, sep, rest = model.partition("/")
        if sep and rest and prefix in self.providers:
            return ModelRoute(model, (Target(self.providers[prefix], rest),))
        family = family_of(model)
        if family is not None:
            matches = [p for p in self.providers.values() if p.type == family]
            if len(matches) == 1:
                return ModelRoute(model, (Target(matches[0], model),))
            if matches:
                names = ", ".join(sorted(p.name for p in matches))
                raise GatewayError(
                    404,
                    f"The model '{model}' is ambiguous: several {family} providers could "
                    f"serve it ({names}). Ask for PROVIDER/{model} or add a model alias.",
                    code="model_not_found",
                    param="model",
                )
        known = ", ".join(sorted(self.providers)) or "none configured"
        raise GatewayError(
            404,
            f"The model '{model}' does not exist on this gateway. Use PROVIDER/MODEL "
            f"(providers: {known}) or a model alias; GET /v1/models lists them.",
            code="model_not_found",
            param="model",
        )

    def model_ids(self) -> list[tuple[str, str]]:
        """(model id, owner) pairs a client can ask for."""
        ids = [(name, m.provider) for name, m in sorted(self.config.models.items())]
        for name, provider in sorted(self.providers.items()):
            ids.extend((f"{name}/{m}", name) for m in provider.known_models())
        return ids
