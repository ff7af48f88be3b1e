"""Talking to a provider: send within its quota, read its answer or its error.

Connecting is bounded by the session; the wait for the response headers by
``first_byte_timeout``; reading a JSON answer or an error body by ``idle_timeout``.
Unreachable and silent upstreams become 502 and 504 in the client's envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from aigw.config import UpstreamConfig
from aigw.errors import GatewayError
from aigw.limits.base import Limiter
from aigw.pipeline.admit import upstream_feedback, upstream_slot
from aigw.pipeline.context import Context
from aigw.providers import Provider
from aigw.providers.base import UpstreamFault, UpstreamRequest, UpstreamResponse
from aigw.providers.keypool import ROTATE_ON
from aigw.translate.common import TranslationError

# An upstream error body is read for its message only; cap what we buffer.
MAX_ERROR_BODY = 64 * 1024


class Upstream:
    """Sends calls to providers and reads what comes back."""

    def __init__(self, config: UpstreamConfig, limiter: Limiter) -> None:
        self.config = config
        self.limiter = limiter

    async def send(
        self, ctx: Context, provider: Provider, build: Callable[[str | None], UpstreamRequest]
    ) -> UpstreamResponse:
        """Send the request ``build(key)`` makes within the provider's quota; map
        unreachable and silent upstreams to 502 and 504.

        With a key pool, a 401/403/429 of one key is answered by trying the next key of
        the pool's order: the client sees only the last answer (:mod:`aigw.providers.keypool`).
        """
        keys: Sequence[str | None] = await provider.keys.order() or (None,)
        last = len(keys) - 1
        for i, key in enumerate(keys):
            resp = await self._send_one(ctx, provider, build(key))
            if key is None or resp.status < 400:
                break
            status = resp.status
            if status == 400 and i < last:
                # Gemini answers a bad key with 400 API_KEY_INVALID: ask the adapter.
                resp = await self._buffered(provider, resp)
                fault = provider.adapter.error(400, await resp.read(), provider.name, None)
                if fault.code == "upstream_auth_failed":
                    status = 401
            if status in ROTATE_ON:
                await provider.keys.failed(key, status, resp.headers.get("Retry-After"))
                if i < last:
                    resp.close()
                    continue
            break
        header = provider.adapter.request_id_header
        if header is not None:
            ctx.upstream_request_id = resp.headers.get(header) or None
        await upstream_feedback(
            self.limiter, ctx, provider, resp.status, resp.headers.get("Retry-After")
        )
        return resp

    async def _buffered(self, provider: Provider, resp: UpstreamResponse) -> UpstreamResponse:
        """``resp`` with its (error) body read, so it can still be read after a look."""
        try:
            async with asyncio.timeout(self.config.idle_timeout):
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            body = b""
        finally:
            resp.close()
        return _Read(resp.status, resp.headers, body[:MAX_ERROR_BODY])

    async def _send_one(
        self, ctx: Context, provider: Provider, req: UpstreamRequest
    ) -> UpstreamResponse:
        limit = self.config.first_byte_timeout
        async with upstream_slot(ctx, provider):
            try:
                async with asyncio.timeout(limit):
                    ctx.upstream_called = True
                    return await provider.transport.send(req)
            except TimeoutError:
                raise GatewayError(
                    504,
                    f"Provider '{provider.name}' did not answer within {limit:g} s.",
                    type="timeout",
                    code="upstream_timeout",
                ) from None
            except aiohttp.ClientConnectorError as exc:
                raise GatewayError(
                    502,
                    f"Cannot connect to provider '{provider.name}' at {exc.host}:{exc.port} "
                    f"({exc.os_error.strerror or exc.os_error}).",
                    type="upstream_error",
                    code="upstream_unreachable",
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise GatewayError(
                    502,
                    f"The connection to provider '{provider.name}' failed ({type(exc).__name__}).",
                    type="upstream_error",
                    code="upstream_connection_error",
                ) from None

    async def read_error(self, provider: Provider, resp: UpstreamResponse) -> GatewayError:
        """The upstream's error, re-enveloped and redacted; keeps a valid Retry-After."""
        try:
            async with asyncio.timeout(self.config.idle_timeout):
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            body = b""
        fault = provider.adapter.error(
            resp.status, body[:MAX_ERROR_BODY], provider.name, resp.headers.get("Retry-After")
        )
        return fault.to_error(provider.secrets)

    async def read_json(
        self, provider: Provider, resp: UpstreamResponse
    ) -> tuple[bytes, dict[str, Any]]:
        """The whole answer and its JSON object; 504 if it stalls, 502 if it is cut or
        not a JSON object."""
        try:
            async with asyncio.timeout(self.config.idle_timeout):
                raw = await resp.read()
        except TimeoutError:
            raise GatewayError(
                504,
                f"Provider '{provider.name}' stalled while sending its answer.",
                type="timeout",
                code="upstream_timeout",
            ) from None
        except (aiohttp.ClientError, OSError):
            raise GatewayError(
                502,
                f"Provider '{provider.name}' closed the connection mid-answer.",
                type="upstream_error",
                code="upstream_connection_error",
            ) from None
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise GatewayError(
                502,
                f"Provider '{provider.name}' returned a body that is not a JSON object.",
                type="upstream_error",
                code="upstream_bad_response",
            )
        return raw, payload

    async def call(
        self, ctx: Context, provider: Provider, build: Callable[[str | None], UpstreamRequest]
    ) -> tuple[bytes, dict[str, Any]]:
        """Send ``build(key)`` and read its JSON answer; an upstream error is raised."""
        resp = await self.send(ctx, provider, build)
        try:
            if resp.status >= 400:
                raise await self.read_error(provider, resp)
            return await self.read_json(provider, resp)
        finally:
            resp.close()


class _Read:
    """An upstream answer whose body was already read."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def read(self) -> bytes:
        return self.body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    def close(self) -> None:
        pass


def untranslatable(provider: Provider, exc: TranslationError) -> GatewayError:
    """A provider answer the translator refused, as the client's 502."""
    # The translator's message may quote the provider's answer: upstream text.
    return UpstreamFault(
        502,
        f"Provider '{provider.name}' sent an answer aigw cannot translate: {exc.message}",
        code="upstream_bad_response",
    ).to_error(provider.secrets)
