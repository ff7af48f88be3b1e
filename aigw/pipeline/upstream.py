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

from aigw.config import TranslationConfig, UpstreamConfig
from aigw.errors import GatewayError, bad_request
from aigw.limits.base import Limiter
from aigw.pipeline.admit import upstream_feedback, upstream_slot
from aigw.pipeline.context import Context
from aigw.providers import Provider
from aigw.providers.base import (
    UpstreamFault,
    UpstreamRequest,
    UpstreamResponse,
    valid_retry_after,
)
from aigw.providers.keypool import ROTATE_ON
from aigw.routing.retry import CONNECT, CUT, STATUS, TIMEOUT, UpstreamFailed
from aigw.translate.common import TranslateOptions, TranslationError

# An upstream error body is read for its message only; cap what we buffer.
MAX_ERROR_BODY = 64 * 1024


class Upstream:
    """Sends calls to providers and reads what comes back."""

    def __init__(self, config: UpstreamConfig, limiter: Limiter) -> None:
        self.config = config
        self.limiter = limiter

    async def send(
        self,
        ctx: Context,
        provider: Provider,
        build: Callable[[str | None], UpstreamRequest],
        within: float | None = None,
    ) -> UpstreamResponse:
        """Send the request ``build(key)`` makes within the provider's quota; map
        unreachable and silent upstreams to 502 and 504 (:class:`UpstreamFailed`, so
        another attempt may follow).

        With a key pool, a 401/403/429 of one key is answered by trying the next key of
        the pool's order: the client sees only the last answer (:mod:`aigw.providers.keypool`),
        and the whole rotation is one attempt of the target. When every key got a 429
        that answer goes back and the attempt loop fails over as for any 429.

        ``within``: a shorter wait for the answer's headers than ``first_byte_timeout``
        (what is left of the call's deadline), for the whole rotation."""
        pool = provider.keys
        # One key (the common case): nothing to rotate, so the pool need not be asked.
        keys: Sequence[str | None] = pool.secrets() if len(pool) == 1 else await pool.order()
        if not keys:
            keys = (None,)
        last = len(keys) - 1
        loop = asyncio.get_running_loop()
        end = None if within is None else loop.time() + within
        first_byte = self.config.first_byte_timeout
        for i, key in enumerate(keys):
            req = build(key)
            if ctx.body_retention is not None:
                ctx.sent_body = req.body  # the audit log keeps what the provider saw
            limit = first_byte if end is None else min(first_byte, end - loop.time())
            # Inline rather than a helper coroutine: no extra frame on the hot path.
            async with upstream_slot(ctx, provider):
                try:
                    async with asyncio.timeout(limit):
                        ctx.upstream_called = True
                        if i == 0:  # another key of the pool is the same attempt
                            ctx.tries += 1
                        resp = await provider.transport.send(req)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise _unreached(provider, exc, limit) from None
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

    async def read_error(self, provider: Provider, resp: UpstreamResponse) -> UpstreamFailed:
        """The upstream's error, re-enveloped and redacted; keeps a valid Retry-After."""
        try:
            async with asyncio.timeout(self.config.idle_timeout):
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            body = b""
        retry_after = resp.headers.get("Retry-After")
        fault = provider.adapter.error(
            resp.status, body[:MAX_ERROR_BODY], provider.name, retry_after
        )
        return UpstreamFailed(
            fault.to_error(provider.secrets), STATUS, resp.status, valid_retry_after(retry_after)
        )

    async def read_json(
        self, provider: Provider, resp: UpstreamResponse
    ) -> tuple[bytes, dict[str, Any]]:
        """The whole answer and its JSON object; 504 if it stalls, 502 if it is cut or
        not a JSON object."""
        try:
            async with asyncio.timeout(self.config.idle_timeout):
                raw = await resp.read()
        except TimeoutError:
            raise UpstreamFailed(
                GatewayError(
                    504,
                    f"Provider '{provider.name}' stalled while sending its answer.",
                    type="timeout",
                    code="upstream_timeout",
                ),
                TIMEOUT,
            ) from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamFailed(
                GatewayError(
                    502,
                    f"Provider '{provider.name}' closed the connection mid-answer.",
                    type="upstream_error",
                    code="upstream_connection_error",
                ),
                CUT,
            ) from None
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise UpstreamFailed(
                GatewayError(
                    502,
                    f"Provider '{provider.name}' returned a body that is not a JSON object.",
                    type="upstream_error",
                    code="upstream_bad_response",
                ),
                CUT,
            )
        return raw, payload

    async def call(
        self,
        ctx: Context,
        provider: Provider,
        build: Callable[[str | None], UpstreamRequest],
        within: float | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """Send ``build(key)`` and read its JSON answer; an upstream error is raised."""
        resp = await self.send(ctx, provider, build, within)
        try:
            if resp.status >= 400:
                raise await self.read_error(provider, resp)
            raw, payload = await self.read_json(provider, resp)
            if ctx.body_retention is not None:
                ctx.answer_chunks = [raw]  # the audit log keeps what the provider answered
            return raw, payload
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


def translate_options(config: TranslationConfig, model: str) -> TranslateOptions:
    """The ``[translation]`` settings for a request translated for ``model``."""
    return TranslateOptions(
        model,
        config.strict,
        config.default_max_tokens,
        refuse_unknown=config.unknown_fields == "refuse",
    )


def _unreached(provider: Provider, exc: BaseException, limit: float) -> UpstreamFailed:
    """A provider that did not answer: silent (504) or unreachable (502)."""
    if isinstance(exc, TimeoutError):
        return UpstreamFailed(
            GatewayError(
                504,
                f"Provider '{provider.name}' did not answer within {limit:g} s.",
                type="timeout",
                code="upstream_timeout",
            ),
            TIMEOUT,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamFailed(
            GatewayError(
                502,
                f"Cannot connect to provider '{provider.name}' at "
                f"{exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error}).",
                type="upstream_error",
                code="upstream_unreachable",
            ),
            CONNECT,
        )
    return UpstreamFailed(
        GatewayError(
            502,
            f"The connection to provider '{provider.name}' failed ({type(exc).__name__}).",
            type="upstream_error",
            code="upstream_connection_error",
        ),
        CONNECT,
    )


def checked_build(
    ctx: Context, build: Callable[[str | None], tuple[UpstreamRequest, list[str]]]
) -> Callable[[str | None], UpstreamRequest]:
    """``build`` for :meth:`Upstream.send`: a translation it refuses becomes the
    client's 400 before anything is sent (so another target may be tried), and its
    warnings are noted once, however many keys of the pool it is built for."""
    noted = False

    def one(key: str | None) -> UpstreamRequest:
        nonlocal noted
        try:
            request, warnings = build(key)
        except TranslationError as exc:
            raise bad_request(exc.message, param=exc.param) from None
        if not noted:
            noted = True
            ctx.warnings.extend(w for w in warnings if w not in ctx.warnings)
        return request

    return one


def unsupported(exc: TranslationError) -> GatewayError:
    """A client request the translator refused, as the client's 400."""
    return bad_request(exc.message, param=exc.param, code="unsupported_parameter")


def untranslatable(provider: Provider, exc: TranslationError) -> GatewayError:
    """A provider answer the translator refused, as the client's 502."""
    # The translator's message may quote the provider's answer: upstream text.
    return UpstreamFault(
        502,
        f"Provider '{provider.name}' sent an answer aigw cannot translate: {exc.message}",
        code="upstream_bad_response",
    ).to_error(provider.secrets)
