"""Step 4, route: a model name to the provider and upstream model that serve it.

``PROVIDER/MODEL`` goes to that provider with that upstream model; a config table
``[models.NAME]`` maps NAME to a provider and upstream model.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigw.config import Config
from aigw.errors import GatewayError
from aigw.providers import Provider


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    upstream_model: str


class Router:
    def __init__(self, config: Config, providers: dict[str, Provider]) -> None:
        self.config = config
        self.providers = providers
        self._cache: dict[str, Target] = {}

    def route(self, model: str) -> Target:
        target = self._cache.get(model)
        if target is None:
            target = self._resolve(model)
            if len(self._cache) < 10_000:  # client-chosen strings: keep the memo bounded
                self._cache[model] = target
        return target

    def _resolve(self, model: str) -> Target:
        alias = self.config.models.get(model)
        if alias is not None:
            return Target(self.providers[alias.provider], alias.model)
        prefix, sep, rest = model.partition("/")
        if sep and rest and prefix in self.providers:
            return Target(self.providers[prefix], rest)
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
