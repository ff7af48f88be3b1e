"""Model names to targets: the provider and upstream model that serve a call.

``PROVIDER/MODEL`` goes to that provider with that upstream model; a config table
``[models.NAME]`` maps NAME to a provider and upstream model; a bare family name
(``gpt-*``, ``o1*``/``o3*``/``o4*``, ``text-embedding-*`` -> openai, ``claude-*`` ->
anthropic, ``gemini-*`` -> gemini) goes to the one provider of that type, if there is
exactly one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aigw.config import Config
from aigw.config.capabilities import NO_CAPABILITIES, Capabilities
from aigw.errors import GatewayError
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
    # The route's overrides of the shipped capability table ([models.NAME] tools = false).
    overrides: Capabilities = NO_CAPABILITIES


class Router:
    def __init__(self, config: Config, providers: dict[str, Provider]) -> None:
        self.config = config
        self.providers = providers
        # Keyed by client-chosen model names: bounded in size (aigw.memo).
        self._memo: Memo[str, Target] = Memo(self._resolve, len)

    def route(self, model: str) -> Target:
        return self._memo(model)

    def _resolve(self, model: str) -> Target:
        alias = self.config.models.get(model)
        if alias is not None:
            return Target(self.providers[alias.provider], alias.model, alias.capabilities)
        prefix, sep, rest = model.partition("/")
        if sep and rest and prefix in self.providers:
            return Target(self.providers[prefix], rest)
        family = family_of(model)
        if family is not None:
            matches = [p for p in self.providers.values() if p.type == family]
            if len(matches) == 1:
                return Target(matches[0], model)
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
