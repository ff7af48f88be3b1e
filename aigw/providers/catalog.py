"""Each provider's own model list, fetched in the background and kept fresh.

GET /v1/models (and the Anthropic and Gemini listings) show what each provider's
models endpoint returns, so an OpenAI-compatible local server (vLLM, Ollama) lists
its own models. The first fetch starts with the server and never delays it nor a
request: until it succeeds a provider lists the shipped price table's models of its
type. A later failure keeps the last list fetched. Every failure is logged, its text
redacted by :meth:`UpstreamFault.to_error` like any upstream error.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson

from aigw.config import UpstreamConfig
from aigw.providers import Provider
from aigw.providers.base import ModelInfo
from aigw.translate.common import TranslationError

log = logging.getLogger("aigw.providers")

# A provider that keeps answering "more" is cut off here (1000 models a page).
MAX_PAGES = 20
# A model list is small; an answer beyond this is not one.
MAX_LIST_BYTES = 16 * 1024 * 1024


class ListingFailed(Exception):
    """Why a provider's model list could not be fetched (already redacted)."""


async def fetch_models(provider: Provider) -> list[ModelInfo]:
    """Every page of ``provider``'s model list. Raises ListingFailed."""
    adapter = provider.adapter
    models: list[ModelInfo] = []
    cursor: str | None = None
    seen: set[str] = set()
    # The pool's first key: a listing must not advance the rotation calls rely on.
    secrets = provider.secrets
    key = secrets[0] if secrets else None
    for _ in range(MAX_PAGES):
        req = adapter.models_request(provider.config, key, cursor)
        if req is None:
            break
        try:
            resp = await provider.transport.send(req)
            try:
                raw = await resp.read()
                status = resp.status
            finally:
                resp.close()
        except (aiohttp.ClientError, OSError) as exc:
            # Only the type: an exception's text may quote the URL (and a key in it).
            raise ListingFailed(f"connection failed ({type(exc).__name__})") from None
        if status >= 400:
            fault = adapter.error(status, raw[:65536], provider.name, None)
            raise ListingFailed(fault.to_error(provider.secrets).message)
        if len(raw) > MAX_LIST_BYTES:
            raise ListingFailed("the model list is too large")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise ListingFailed("the answer is not a JSON object")
        try:
            page = adapter.models_page(payload)
        except TranslationError as exc:
            raise ListingFailed(exc.message) from None
        models.extend(m for m in page.models if m.id not in seen)
        seen.update(m.id for m in page.models)
        if page.next is None or page.next == cursor:
            break
        cursor = page.next
    return models


class ModelLists:
    """Fetches every provider's model list now and then, in the background."""

    def __init__(self, providers: dict[str, Provider], config: UpstreamConfig) -> None:
        self.providers = providers
        self.config = config
        # Set once every provider has been tried (for tests and readiness checks).
        self.first_round = asyncio.Event()

    async def refresh(self, provider: Provider) -> None:
        """Fetch one provider's list; on failure keep what it lists now."""
        try:
            async with asyncio.timeout(self.config.models_timeout):
                models = await fetch_models(provider)
        except TimeoutError:
            reason = f"no answer within {self.config.models_timeout:g} s"
        except ListingFailed as exc:
            reason = str(exc)
        except Exception as exc:  # a bug here must not stop the refresher
            reason = f"unexpected {type(exc).__name__}"
        else:
            provider.use_models(models, "provider")
            log.info("provider %s lists %d models", provider.name, len(models))
            return
        if provider.models_source == "provider":
            log.warning(
                "provider %s: could not refresh its model list (%s); keeping the last one",
                provider.name,
                reason,
            )
        else:
            log.warning(
                "provider %s: could not fetch its model list (%s); listing the shipped "
                "price table's %s models instead",
                provider.name,
                reason,
                provider.type,
            )

    async def refresh_all(self) -> None:
        fetching = [
            p
            for p in self.providers.values()
            # Whether the adapter lists models at all does not depend on the key.
            if p.adapter.models_request(p.config, None, None) is not None
        ]
        await asyncio.gather(*(self.refresh(p) for p in fetching))

    async def run(self) -> None:
        """Fetch now, then every ``models_refresh`` seconds (0: never)."""
        interval = self.config.models_refresh
        if interval <= 0:
            self.first_round.set()
            return
        while True:
            await self.refresh_all()
            self.first_round.set()
            await asyncio.sleep(interval)
