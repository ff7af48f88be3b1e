"""Step 6, forward: call the target, relay the answer, account for it.

Timeouts: connecting is bounded by the session; the wait for the response headers
(and for a stream's first chunk) by ``first_byte_timeout``; every later wait inside
a stream by ``idle_timeout``. A hanging upstream therefore costs at most those, and
never blocks other requests.

The ledger row is committed before the last bytes go out: a JSON answer is sent
only after the commit; a stream's end (``[DONE]`` and the usage chunk) is held
back until it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web

from aigw.errors import GatewayError, Wire
from aigw.pricing import format_usd
from aigw.providers import Provider
from aigw.providers.base import NativeStream, UpstreamRequest, UpstreamResponse
from aigw.sse import SSEParser
from aigw.tokens import chars_to_tokens, chat_prompt_tokens
from aigw.usage import Usage

if TYPE_CHECKING:
    from aigw.app import Gateway
    from aigw.formats.openai_chat import ChatCall
    from aigw.pipeline.context import Context

# An upstream error body is read for its message only; cap what we buffer.
MAX_ERROR_BODY = 64 * 1024
CLIENT_GONE = 499  # nginx's convention for "client closed the connection"


def base_headers(ctx: Context) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id}
    if ctx.target is not None:
        headers["x-aigw-provider"] = ctx.target.provider.name
        headers["x-aigw-upstream-model"] = ctx.target.upstream_model
    if ctx.warnings:
        headers["x-aigw-warning"] = "; ".join(ctx.warnings)
    return headers


def cost_header(ctx: Context) -> str:
    return format_usd(ctx.cost_nusd, 9)


async def send(gw: Gateway, provider: Provider, req: UpstreamRequest) -> UpstreamResponse:
    """Send ``req``; map unreachable and silent upstreams to 502 and 504."""
    limit = gw.config.upstream.first_byte_timeout
    try:
        async with asyncio.timeout(limit):
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


async def read_error(gw: Gateway, provider: Provider, resp: UpstreamResponse) -> GatewayError:
    """The upstream's error, re-enveloped; keeps Retry-After."""
    try:
        async with asyncio.timeout(gw.config.upstream.idle_timeout):
            body = await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError):
        body = b""
    return provider.adapter.error(
        resp.status,
        body[:MAX_ERROR_BODY],
        provider.name,
        provider.api_key,
        resp.headers.get("Retry-After"),
    )


async def read_json(
    gw: Gateway, provider: Provider, resp: UpstreamResponse
) -> tuple[bytes, dict[str, object]]:
    try:
        async with asyncio.timeout(gw.config.upstream.idle_timeout):
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


def stream_error(err: GatewayError, wire: Wire) -> bytes:
    """An error event inside an SSE stream, in the shape each SDK raises on."""
    from aigw.errors import error_payload
    from aigw.sse import encode

    if wire is Wire.ANTHROPIC:
        return encode(error_payload(err, wire), "error")
    return encode(error_payload(err, wire))


async def relay_stream(
    gw: Gateway,
    ctx: Context,
    request: web.Request,
    resp: UpstreamResponse,
    native: NativeStream,
    prompt_estimate: int,
) -> web.StreamResponse:
    """Relay an upstream SSE stream event by event; commit the ledger before its end."""
    up = gw.config.upstream
    out = web.StreamResponse(
        status=200,
        headers={
            **base_headers(ctx),
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
        },
    )
    await out.prepare(request)
    parser = SSEParser()
    state = native.state
    failure: GatewayError | None = None
    client_gone = False
    loop = asyncio.get_running_loop()
    chunks = resp.chunks().__aiter__()
    wait = up.first_byte_timeout
    try:
        async with asyncio.timeout(None) as timer:
            while True:
                timer.reschedule(loop.time() + wait)
                try:
                    data = await anext(chunks)
                except StopAsyncIteration:
                    data = None
                timer.reschedule(None)
                wait = up.idle_timeout
                events = parser.feed(data) if data is not None else parser.flush()
                payload = b"".join([native.feed(ev) for ev in events])
                if state.error is not None:
                    failure = state.error
                    break
                if payload:
                    try:
                        await out.write(payload)
                    except (ConnectionError, aiohttp.ClientConnectionError):
                        client_gone = True
                        break
                if data is None:
                    break
    except TimeoutError:
        failure = GatewayError(
            504,
            f"Provider '{ctx.target.provider.name if ctx.target else '?'}'"
            f" went silent for {wait:g} s mid-stream.",
            type="timeout",
            code="upstream_timeout",
        )
    except (aiohttp.ClientError, OSError):
        failure = GatewayError(
            502,
            "The provider closed the connection mid-stream.",
            type="upstream_error",
            code="upstream_connection_error",
        )
    if failure is None and not client_gone and not (state.done or state.finished):
        failure = GatewayError(
            502,
            "The provider ended the stream before the answer was complete.",
            type="upstream_error",
            code="upstream_incomplete",
        )

    if state.usage is not None:
        ctx.usage = state.usage
    else:
        ctx.usage = Usage(prompt_estimate, chars_to_tokens(state.chars))
        ctx.usage_estimated = True
    if client_gone:
        ctx.status, ctx.error = CLIENT_GONE, "client closed the connection mid-stream"
    elif failure is not None:
        ctx.status, ctx.error = failure.status, failure.message
    try:
        await gw.accountant.record(ctx)
    except GatewayError as err:
        failure = failure or err
    if client_gone:
        return out
    try:
        await out.write(stream_error(failure, ctx.wire) if failure else native.tail())
        await out.write_eof()
    except (ConnectionError, aiohttp.ClientConnectionError):
        pass
    return out


async def chat(
    gw: Gateway, ctx: Context, request: web.Request, call: ChatCall
) -> web.StreamResponse:
    """Forward an OpenAI chat completion to an OpenAI-family target."""
    assert ctx.target is not None
    provider = ctx.target.provider
    req = provider.adapter.chat_request(
        provider.config,
        provider.api_key,
        call.body,
        upstream_model=ctx.target.upstream_model,
        stream=call.stream,
    )
    resp = await send(gw, provider, req)
    try:
        if resp.status >= 400:
            raise await read_error(gw, provider, resp)
        prompt_estimate = chat_prompt_tokens(call.body)
        if call.stream:
            native = provider.adapter.native_stream(client_wants_usage=call.wants_usage)
            return await relay_stream(gw, ctx, request, resp, native, prompt_estimate)
        raw, payload = await read_json(gw, provider, resp)
        usage = provider.adapter.response_usage(payload)
        if usage is None:
            usage, ctx.usage_estimated = Usage(prompt_estimate, 0), True
        ctx.usage = usage
        await gw.accountant.record(ctx)
        return web.Response(
            body=raw,
            content_type="application/json",
            headers={**base_headers(ctx), "x-aigw-cost-usd": cost_header(ctx)},
        )
    finally:
        resp.close()
