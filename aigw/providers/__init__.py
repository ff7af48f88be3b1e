"""Configured providers: adapter (wire format) + transport (I/O) + keys (a pool)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp

from aigw import secrets
from aigw.config import Config, ProviderConfig
from aigw.providers.base import ModelInfo, ProviderAdapter, Transport
from aigw.providers.keypool import EMPTY_POOL, KeyPool, LocalKeyPool

log = logging.getLogger("aigw.providers")


@dataclass(slots=True, eq=False)
class Provider:
    config: ProviderConfig
    adapter: ProviderAdapter
    transport: Transport
    # Build requests with the keys it orders; redact upstream text with ``secrets``.
    keys: KeyPool = field(default=EMPTY_POOL, repr=False)
    key_source: str | None = None
    models: list[str] = field(default_factory=list)
    # What the provider says about each of ``models`` (by id); set with use_models.
    infos: dict[str, ModelInfo] = field(default_factory=dict)
    # Where ``models`` came from: "price table" (shipped), "built-in" or "provider".
    models_source: str = "price table"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key of the provider: what redaction removes from upstream text."""
        return self.keys.secrets()

    @property
    def region(self) -> str | None:
        return self.config.region

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def type(self) -> str:
        return self.config.type

    def known_models(self) -> list[str]:
        return self.models

    def use_models(self, infos: list[ModelInfo], source: str) -> None:
        """Replace the model list (one assignment each: readers never see a mix)."""
        self.infos = {m.id: m for m in infos}
        self.models = list(self.infos)
        self.models_source = source


def adapters() -> dict[str, ProviderAdapter]:
    """One adapter per provider type: everything provider-specific is in it."""
    # Imported here: each adapter module imports aigw.providers.base, which runs this
    # package's __init__ first.
    from aigw.providers import anthropic, gemini, mock, openai

    return {
        "openai": openai.ADAPTER,
        "anthropic": anthropic.ADAPTER,
        "gemini": gemini.ADAPTER,
        "mock": mock.ADAPTER,
    }


def build(
    config: Config, session: aiohttp.ClientSession, catalog: dict[str, list[str]]
) -> dict[str, Provider]:
    """One :class:`Provider` per configured provider; keys resolved now, once."""
    from aigw.providers.http import HTTPTransport

    by_type = adapters()
    http = HTTPTransport(session)
    out: dict[str, Provider] = {}
    for name, pc in config.providers.items():
        adapter = by_type[pc.type]
        keys: list[str] = []
        source = None
        if adapter.needs_key:
            found = secrets.lookup_keys(name)
            if found is not None:
                keys, source = found
            else:
                log.warning(
                    "provider %s has no API key (set %s, a systemd credential %s, or run "
                    "`aigw providers set-key %s`); calls go out unauthenticated",
                    name,
                    secrets.env_var_name(name),
                    secrets.credential_name(name),
                    name,
                )
        provider = Provider(pc, adapter, adapter.transport(http), LocalKeyPool(name, keys), source)
        fetches = adapter.models_request(pc, keys[0] if keys else None, None) is not None
        provider.use_models(
            [ModelInfo(m) for m in adapter.models(catalog.get(pc.type, []))],
            "price table" if fetches else "built-in",
        )
        out[name] = provider
    return out
