"""Step 6, forward: call the target, relay the answer, account for it.

When the client and the target speak the same API the body goes through as it came
(only the model is replaced) and the answer comes back byte for byte. Otherwise the
request is translated through the hub format (OpenAI chat completions) and the
answer, streamed or not, is translated back event by event.

Timeouts: connecting is bounded by the session; the wait for the response headers
(and for a stream's first chunk) by ``first_byte_timeout``; every later wait inside
a stream by ``idle_timeout``. A hanging upstream costs at most those and never
blocks other requests.

The ledger row is committed before the last bytes go out: a JSON answer is sent
only after the commit; a stream's end (``[DONE]``, ``message_stop``, the final
Gemini chunk) is held back until it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson
from aiohttp import web

from aigw.errors import GatewayError, Wire, bad_request
from aigw.formats import Call, ClientFormat, ClientStream
from aigw.headers import header_value
from aigw.pipeline import admit
from aigw.pricing import format_usd
from aigw.providers import Provider
from aigw.providers import gemini as gemini_provider
from aigw.providers import openai as openai_provider
from aigw.providers.base import (
    HubStream,
    StreamState,
    UpstreamFault,
    UpstreamRequest,
    UpstreamResponse,
    redact_bytes,
)
from aigw.sse import Event, SSEParser, encode
from aigw.tokens import chars_to_tokens
from aigw.translate import gemini as gemini_tr
from aigw.translate.common import TranslateOptions, TranslationError
from aigw.usage import Usage

if TYPE_CHECKING:
    from aigw.app import Gateway
    from aigw.pipeline.context import Context

log = logging.getLogger("aigw.forward")

# An upstream error body is read for its message only; cap what we buffer.
MAX_ERROR_BODY = 64 * 1024
CLIENT_GONE = 499  # nginx's convention for "client closed the connection"


def base_headers(ctx: Context) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id}
    if ctx.target is not None:
        headers["x-aigw-provider"] = header_value(ctx.target.provider.name)
        # Client-chosen (PROVIDER/MODEL) or from the config: made header-safe either way.
        headers["x-aigw-upstream-model"] = header_value(ctx.target.upstream_model)
    if ctx.lease is not None:
        headers.update(ctx.lease.headers())
    if ctx.warnings:
        # Warnings quote client-chosen parameter names.
        headers["x-aigw-warning"] = header_value("; ".join(ctx.warnings), 2048)
    return headers


def cost_header(ctx: Context) -> str:
    return format_usd(ctx.cost_nusd, 9)


# -- talking to the provider -------------------------------------------------------


async def send(
    gw: Gateway, ctx: Context, provider: Provider, req: UpstreamRequest
) -> UpstreamResponse:
    """Send ``req`` within the provider's quota; map unreachable and silent upstreams
    to 502 and 504."""
    limit = gw.config.upstream.first_byte_timeout
    async with admit.upstream_slot(ctx, provider):
        try:
            async with asyncio.timeout(limit):
                ctx.upstream_called = True
                resp = await provider.transport.send(req)
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
    await admit.upstream_feedback(
        gw.limiter, ctx, provider, resp.status, resp.headers.get("Retry-After")
    )
    return resp


async def read_error(gw: Gateway, provider: Provider, resp: UpstreamResponse) -> GatewayError:
    """The upstream's error, re-enveloped and redacted; keeps a valid Retry-After."""
    try:
        async with asyncio.timeout(gw.config.upstream.idle_timeout):
            body = await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError):
        body = b""
    fault = provider.adapter.error(
        resp.status, body[:MAX_ERROR_BODY], provider.name, resp.headers.get("Retry-After")
    )
    return fault.to_error(provider.api_key)


async def read_json(
    gw: Gateway, provider: Provider, resp: UpstreamResponse
) -> tuple[bytes, dict[str, Any]]:
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


def untranslatable(provider: Provider, exc: TranslationError) -> GatewayError:
    # The translator's message may quote the provider's answer: upstream text.
    return UpstreamFault(
        502,
        f"Provider '{provider.name}' sent an answer aigw cannot translate: {exc.message}",
        code="upstream_bad_response",
    ).to_error(provider.api_key)


# -- relaying ----------------------------------------------------------------------


class Relay(Protocol):
    """Turns upstream events into client bytes; ``tail`` ends the stream."""

    state: StreamState

    def feed(self, event: Event) -> bytes: ...

    def tail(self) -> bytes: ...


class Watchdog:
    """Calls ``expire`` when a wait runs past its deadline.

    A stream waits on its upstream once per chunk. Re-arming a timer each time would
    cost two timer-heap operations per chunk; here each wait only stores a deadline,
    and the one timer re-arms itself when it fires early.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[], None]) -> None:
        self.loop = loop
        self.expire = expire
        self.deadline = math.inf
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > self.deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self.deadline, self._fire)

    def pause(self) -> None:
        """Not waiting (e.g. writing to the client): no deadline until the next arm."""
        self.deadline = math.inf

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self.deadline == math.inf:
            return  # paused; the next arm() sets a new timer
        if self.loop.time() >= self.deadline:
            self.expired = True
            self.expire()
        else:
            self._timer = self.loop.call_at(self.deadline, self._fire)


class Translating:
    """A provider stream translated event by event into the client's stream format."""

    def __init__(self, hub: HubStream, client: ClientStream) -> None:
        self.hub = hub
        self.client = client
        self.state = hub.state

    def feed(self, event: Event) -> bytes:
        out = b""
        for chunk in self.hub.feed(event):
            # The usage chunk goes out with the end of the stream, after the commit.
            if chunk.get("usage") and not chunk.get("choices"):
                continue
            out += self.client.feed(chunk)
        return out

    def tail(self) -> bytes:
        return self.client.finish(self.hub.final_usage_chunk())


async def relay_stream(
    gw: Gateway,
    ctx: Context,
    request: web.Request,
    resp: UpstreamResponse,
    relay: Relay,
    stream_error: Callable[[GatewayError], bytes],
    prompt_estimate: int,
) -> web.StreamResponse:
    """Relay an upstream SSE stream event by event; commit the ledger before its end.

    Nothing raises out of here once the headers are sent (cancellation aside): every
    failure, ours included, ends the stream with an error event in the client's
    format, and the call gets its ledger row.
    """
    up = gw.config.upstream
    api_key = ctx.target.provider.api_key if ctx.target else None
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
    state = relay.state
    failure: GatewayError | None = None
    client_gone = False
    chunks = resp.chunks().__aiter__()
    wait = up.first_byte_timeout
    watchdog = Watchdog(asyncio.get_running_loop(), resp.close)
    try:
        while True:
            watchdog.arm(wait)
            try:
                data: bytes | None = await anext(chunks)
            except StopAsyncIteration:
                data = None
            watchdog.pause()
            if watchdog.expired:
                raise TimeoutError
            wait = up.idle_timeout
            events = parser.feed(data) if data is not None else parser.flush()
            payload = redact_bytes(b"".join([relay.feed(ev) for ev in events]), api_key)
            if state.error is not None:
                failure = state.error.to_error(api_key)
                break
            if payload:
                try:
                    await out.write(payload)
                except (ConnectionError, aiohttp.ClientConnectionError):
                    client_gone = True
                    break
            if data is None:
                break
    except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError too
        if watchdog.expired or isinstance(exc, TimeoutError):
            name = ctx.target.provider.name if ctx.target else "?"
            failure = GatewayError(
                504,
                f"Provider '{name}' went silent for {wait:g} s mid-stream.",
                type="timeout",
                code="upstream_timeout",
            )
        else:
            failure = GatewayError(
                502,
                "The provider closed the connection mid-stream.",
                type="upstream_error",
                code="upstream_connection_error",
            )
    except TranslationError as exc:
        failure = UpstreamFault(
            502,
            f"The provider's stream could not be translated: {exc.message}",
            code="upstream_bad_response",
        ).to_error(api_key)
    except asyncio.CancelledError:
        if not gw.drain.cutting:
            raise
        failure = gw.drain.cut(ctx)  # shutdown: recorded below with the text so far
    except Exception:  # our own bug: the headers went out, so end the stream properly
        failure = stream_failed(ctx)
    finally:
        watchdog.cancel()
    if failure is None and not client_gone and not (state.done or state.finished):
        failure = GatewayError(
            502,
            "The provider ended the stream before the answer was complete.",
            type="upstream_error",
            code="upstream_incomplete",
        )

    usage = state.usage
    complete = failure is None and not client_gone
    if usage is None or not complete:
        # No final count: estimate the output from the text streamed so far (the
        # provider bills what it generated even if the stream broke).
        usage = usage or Usage(prompt_estimate)
        usage.completion_tokens = max(usage.completion_tokens, chars_to_tokens(state.chars))
        ctx.usage_estimated = True
    ctx.usage = usage
    tail = b""
    if failure is None and not client_gone:
        try:
            tail = redact_bytes(relay.tail(), api_key)
        except Exception:
            failure = stream_failed(ctx)
    if client_gone:
        ctx.status, ctx.error = CLIENT_GONE, "client closed the connection mid-stream"
    elif failure is not None:
        ctx.status, ctx.error = failure.status, failure.message
    try:
        await gw.accountant.record(ctx)
    except GatewayError as err:
        failure = failure or err
    except Exception:
        failure = failure or stream_failed(ctx)
    if client_gone:
        return out
    try:
        # The cost is known only now, after the headers went out: an SSE comment
        # carries it. google-genai chokes on comments, so Gemini streams go without.
        cost = (
            b""
            if ctx.wire is Wire.GOOGLE
            else (b": x-aigw-cost-usd " + cost_header(ctx).encode() + b"\n\n")
        )
        await out.write(cost + (stream_error(failure) if failure else tail))
        await out.write_eof()
    except (ConnectionError, aiohttp.ClientConnectionError):
        pass
    return out


def stream_failed(ctx: Context) -> GatewayError:
    """Log the exception being handled (a gateway bug) and describe it for the client.

    Once a stream's headers are out, no second HTTP response can follow; this error
    goes out as the stream's own error event instead.
    """
    log.exception("request %s: the stream failed after its headers were sent", ctx.request_id)
    return GatewayError(
        500,
        f"Internal gateway error mid-stream (request id {ctx.request_id}).",
        type="server_error",
        code="internal_error",
    )


async def finish_json(
    gw: Gateway, ctx: Context, body: bytes, usage: Usage | None, prompt_estimate: int
) -> web.Response:
    """Record a non-streamed answer, then send it."""
    if usage is None:
        usage, ctx.usage_estimated = Usage(prompt_estimate, 0), True
    ctx.usage = usage
    await gw.accountant.record(ctx)
    return web.Response(
        body=redact_bytes(body, ctx.target.provider.api_key if ctx.target else None),
        content_type="application/json",
        headers={**base_headers(ctx), "x-aigw-cost-usd": cost_header(ctx)},
    )


# -- the endpoints -----------------------------------------------------------------


async def chat(
    gw: Gateway, ctx: Context, request: web.Request, call: Call, fmt: ClientFormat
) -> web.StreamResponse:
    """A chat call (OpenAI chat, Anthropic messages, Gemini generateContent) to any target."""
    assert ctx.target is not None
    provider = ctx.target.provider
    adapter = provider.adapter
    model = ctx.target.upstream_model
    native = adapter.wire is fmt.wire
    client_headers: Mapping[str, str] | None = request.headers if native else None
    if native:
        body = call.body
    else:
        opts = TranslateOptions(
            model, gw.config.translation.strict, gw.config.translation.default_max_tokens
        )
        try:
            translated = adapter.from_hub(fmt.to_hub(call), opts)
        except TranslationError as exc:
            raise bad_request(exc.message, param=exc.param, code="unsupported_parameter") from None
        body = translated.body
        ctx.warnings.extend(translated.warnings)
    req = adapter.chat_request(
        provider.config,
        provider.api_key,
        body,
        upstream_model=model,
        stream=call.stream,
        client_headers=client_headers,
    )
    resp = await send(gw, ctx, provider, req)
    try:
        if resp.status >= 400:
            raise await read_error(gw, provider, resp)
        if call.stream:
            relay: Relay = (
                adapter.native_stream(client_wants_usage=call.wants_usage)
                if native
                else Translating(adapter.hub_stream(model), fmt.stream(call, model))
            )
            return await relay_stream(
                gw, ctx, request, resp, relay, fmt.stream_error, call.prompt_estimate
            )
        raw, payload = await read_json(gw, provider, resp)
        if not native:
            try:
                raw = orjson.dumps(fmt.from_hub(adapter.response_to_hub(payload, model), model))
            except TranslationError as exc:
                raise untranslatable(provider, exc) from None
        if call.array:  # Gemini's streamGenerateContent without alt=sse: a JSON array
            raw = b"[" + raw + b"]"
        return await finish_json(
            gw, ctx, raw, adapter.response_usage(payload), call.prompt_estimate
        )
    finally:
        resp.close()


async def embeddings(
    gw: Gateway, ctx: Context, request: web.Request, call: Call
) -> web.StreamResponse:
    """POST /v1/embeddings to an OpenAI-family or Gemini target."""
    assert ctx.target is not None
    provider = ctx.target.provider
    model = ctx.target.upstream_model
    pc, key = provider.config, provider.api_key
    if provider.type in ("openai", "mock"):
        req = openai_provider.ADAPTER.request(pc, key, "/embeddings", {**call.body, "model": model})
    elif provider.type == "gemini":
        try:
            translated = gemini_tr.embeddings_to_gemini_request(call.body, upstream_model=model)
        except TranslationError as exc:
            raise bad_request(exc.message, param=exc.param) from None
        ctx.warnings.extend(translated.warnings)
        req = gemini_provider.ADAPTER.request(pc, key, model, "batchEmbedContents", translated.body)
    else:
        raise bad_request(
            f"Provider '{provider.name}' ({provider.type}) offers no embeddings; "
            "use an openai or gemini provider.",
            param="model",
            code="unsupported_model",
        )
    resp = await send(gw, ctx, provider, req)
    try:
        if resp.status >= 400:
            raise await read_error(gw, provider, resp)
        raw, payload = await read_json(gw, provider, resp)
        usage = openai_provider.ADAPTER.response_usage(payload)
        if provider.type == "gemini":
            try:
                out = gemini_tr.gemini_to_embeddings_response(
                    payload,
                    model=model,
                    encoding_format=call.body.get("encoding_format"),
                    prompt_tokens=call.prompt_estimate,
                )
            except TranslationError as exc:
                raise untranslatable(provider, exc) from None
            raw, usage = orjson.dumps(out), None  # Gemini reports no usage: estimate
        return await finish_json(gw, ctx, raw, usage, call.prompt_estimate)
    finally:
        resp.close()


async def responses(
    gw: Gateway, ctx: Context, request: web.Request, call: Call
) -> web.StreamResponse:
    """POST /v1/responses, passed through to an OpenAI target."""
    assert ctx.target is not None
    provider = ctx.target.provider
    if provider.type != "openai":
        raise bad_request(
            f"The Responses API is available for openai providers only; "
            f"'{provider.name}' is {provider.type}. Use /v1/chat/completions, "
            "which reaches every provider.",
            param="model",
            code="unsupported_model",
        )
    adapter = openai_provider.ADAPTER
    body = {**call.body, "model": ctx.target.upstream_model}
    resp = await send(
        gw, ctx, provider, adapter.request(provider.config, provider.api_key, "/responses", body)
    )
    try:
        if resp.status >= 400:
            raise await read_error(gw, provider, resp)
        if call.stream:
            return await relay_stream(
                gw,
                ctx,
                request,
                resp,
                openai_provider.ResponsesStream(),
                responses_stream_error,
                call.prompt_estimate,
            )
        raw, payload = await read_json(gw, provider, resp)
        return await finish_json(
            gw, ctx, raw, adapter.response_usage(payload), call.prompt_estimate
        )
    finally:
        resp.close()


def responses_stream_error(err: GatewayError) -> bytes:
    """An ``error`` event as the Responses API streams it."""
    return encode(
        {"type": "error", "code": err.code, "message": err.message, "param": err.param}, "error"
    )
