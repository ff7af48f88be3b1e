"""``aigw providers test``: one tiny chat request per key, timed, errors redacted.

The request is the smallest chat call of the provider's own API ("ping", a few output
tokens, translated from the hub format as a real call would be). A failure is shown
the way a client would see it: through :meth:`UpstreamFault.to_error`, so no key of the
pool appears in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from aigw.errors import GatewayError
from aigw.pricing import Shipped
from aigw.providers import Provider
from aigw.providers.base import redact
from aigw.translate.common import TranslateOptions, TranslationError

PING = "Reply with the word pong."
MAX_TOKENS = 16  # enough for any model to answer; a reasoning model may stop at the limit


@dataclass(frozen=True, slots=True)
class ProbeResult:
    key: int | None  # 1-based position in the pool; None: the provider needs no key
    ok: bool
    status: int | None  # the provider's HTTP status (None: no answer)
    latency_ms: int
    error: str | None = None  # redacted

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "ok": self.ok,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


def default_model(provider: Provider, shipped: Shipped) -> str | None:
    """The cheapest chat model the price table lists for the provider's type."""
    if provider.type == "mock":
        return "echo"
    chat = [
        (price.base.input + price.base.output, name)
        for name, price in shipped.prices.items()
        if shipped.providers.get(name) == provider.type
        and name == price.model  # not an alias
        and price.max_output_tokens != 0  # not an embeddings model
    ]
    return min(chat)[1] if chat else None


async def probe(provider: Provider, model: str, wait: float = 30.0) -> list[ProbeResult]:
    """One tiny request per key of ``provider`` (one request when it needs none)."""
    keys: Sequence[str | None] = provider.secrets or (None,)
    results = []
    for i, key in enumerate(keys):
        results.append(await _one(provider, model, key, None if key is None else i + 1, wait))
    return results


async def _one(
    provider: Provider, model: str, key: str | None, index: int | None, wait: float
) -> ProbeResult:
    adapter = provider.adapter
    hub = {
        "model": model,
        "messages": [{"role": "user", "content": PING}],
        "max_tokens": MAX_TOKENS,
    }
    started = time.perf_counter()

    def result(ok: bool, status: int | None, error: str | None = None) -> ProbeResult:
        ms = int((time.perf_counter() - started) * 1000)
        return ProbeResult(index, ok, status, ms, error)

    try:
        body = adapter.from_hub(hub, TranslateOptions(model, False, MAX_TOKENS)).body
        req = adapter.chat_request(provider.config, key, body, upstream_model=model, stream=False)
    except (TranslationError, GatewayError) as exc:
        return result(False, None, redact(str(getattr(exc, "message", exc)), provider.secrets))
    try:
        async with asyncio.timeout(wait):
            resp = await provider.transport.send(req)
            try:
                raw = await resp.read()
            finally:
                resp.close()
    except TimeoutError:
        return result(False, None, f"no answer within {wait:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return result(False, None, redact(f"cannot connect: {exc}", provider.secrets))
    if resp.status >= 400:
        fault = adapter.error(
            resp.status, raw[:65536], provider.name, resp.headers.get("Retry-After")
        )
        err = fault.to_error(provider.secrets)
        return result(False, resp.status, err.message)
    return result(True, resp.status)
