"""The request lifecycle, in one place.

Every proxied call walks the same steps, in this order (:func:`lifecycle`):

1. authenticate -- gateway key -> key record (401)
2. route        -- model name -> provider + upstream model (404, 403 for a model the
                   key may not use). Routing comes before admission because the budget
                   reservation needs the target's price.
3. admit        -- rate limits and budgets, worst case reserved up front (429)
4. scrub        -- PII and secrets                                    [later issue]
5. cache        -- replay an identical earlier answer                 [later issue]
6. forward      -- call the provider, relay or translate, commit the ledger row

A step refuses by raising :class:`GatewayError`; :func:`refuse` records the refusal
(when the caller is known) and renders it in the envelope of the client's API.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from aigw import tokens
from aigw.errors import GatewayError, Wire, error_body
from aigw.formats import (
    Call,
    ClientFormat,
    anthropic_messages,
    gemini,
    openai_chat,
    openai_endpoints,
)
from aigw.formats.validate import shown
from aigw.headers import safe_headers
from aigw.pipeline import forward
from aigw.pipeline.admit import admit, release
from aigw.pipeline.authenticate import authenticate
from aigw.pipeline.context import Context
from aigw.pipeline.route import Target
from aigw.providers.base import redact_bytes

if TYPE_CHECKING:
    from aigw.app import Gateway
    from aigw.model import KeyRecord

log = logging.getLogger("aigw.handler")

Forwarder = Callable[["Gateway", Context, web.Request, Call], Awaitable[web.StreamResponse]]


def _gateway(request: web.Request) -> Gateway:
    from aigw.app import GATEWAY

    return request.app[GATEWAY]


# One nesting limit for every request body, checked at parse time. Every later stage
# handles far more (orjson re-encodes up to 254 levels, the translators wrap a value
# in a few more, the token estimator walks it), so nothing deeper can reach them.
MAX_JSON_DEPTH = 64


def _too_large(limit: int, what: str = "request body") -> GatewayError:
    return GatewayError(
        413,
        f"The {what} is larger than this gateway accepts ({limit / 2**20:g} MiB).",
        code="request_too_large",
    )


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decoded per its Content-Encoding: identity, gzip or deflate.

    The decoded size is held to ``limit`` as it is produced, so a small compressed
    body cannot expand into gigabytes (a zip bomb); anything else is a 415.
    """
    codings = [c.strip().lower() for c in encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return raw
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise GatewayError(
            415,
            f"Content-Encoding {shown(encoding)} is not supported; send the body "
            "uncompressed, or with gzip or deflate.",
            code="unsupported_content_encoding",
        )
    if codings[0] == "deflate":
        # RFC 9110 deflate is zlib-wrapped; some clients send raw deflate.
        wbits = zlib.MAX_WBITS if raw[:1] and raw[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        wbits = 16 + zlib.MAX_WBITS
    out = b""
    rest = raw
    try:
        while rest:  # gzip allows several members back to back
            d = zlib.decompressobj(wbits)
            out += d.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or d.unconsumed_tail:
                raise _too_large(limit, "decompressed request body")
            if not d.eof:
                raise zlib.error("truncated")
            rest = d.unused_data if wbits > zlib.MAX_WBITS else b""
    except zlib.error:
        raise GatewayError(
            400,
            f"The request body is not valid {codings[0]} data (Content-Encoding).",
            code="invalid_content_encoding",
        ) from None
    return out


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if ``value`` nests arrays and objects more than ``limit`` levels deep.

    Level by level, without recursion, so that it cannot itself run out of stack.
    """
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
    return False


def _json_too_deep() -> GatewayError:
    return GatewayError(
        400,
        f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.",
        code="json_too_deep",
    )


async def read_body(request: web.Request, limit: int) -> Any:
    """The request's JSON body: 413 if too large, 415 for an unknown encoding, 400 if
    empty, not JSON or nested too deeply, 499 if the client hangs up mid-upload."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    timeout = _gateway(request).config.server.body_timeout
    try:
        async with asyncio.timeout(timeout):  # a body trickled in forever (slowloris)
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    except TimeoutError:
        raise GatewayError(
            408, f"The request body did not arrive within {timeout:g} s.", code="request_timeout"
        ) from None
    except ConnectionError:
        raise GatewayError(
            forward.CLIENT_GONE,
            "The client closed the connection before sending the whole request.",
            code="client_closed",
        ) from None
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        raw = decode_body(raw, encoding, limit)
    if not raw.strip():
        raise GatewayError(
            400, "The request body is empty; expected a JSON object.", code="invalid_json"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own limit, far above ours
            raise _json_too_deep() from None
        raise GatewayError(
            400, f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from None
    # Fewer brackets than the limit cannot nest deeper than it: skip the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and too_deep(body):
        raise _json_too_deep()
    return body


def route(gw: Gateway, key: KeyRecord, model: str) -> Target:
    if not gw.permissions.allows(key, gw.directory.team(key.team), model):
        raise GatewayError(
            403,
            f"This gateway key may not use the model '{model}'.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    return gw.router.route(model)


async def refuse(gw: Gateway, ctx: Context, err: GatewayError) -> web.Response:
    """Record a refused or failed call (when the caller is known) and render the error."""
    ctx.status, ctx.error = err.status, err.message
    if ctx.key is not None:
        try:
            await gw.accountant.record(ctx)
        except GatewayError:
            log.error("request %s: could not record the failed call", ctx.request_id)
    headers = {**forward.base_headers(ctx), **safe_headers(err.headers)}
    if ctx.target is not None:
        headers["x-aigw-cost-usd"] = forward.cost_header(ctx)
    return web.Response(
        status=err.status,
        body=error_body(err, ctx.wire),
        content_type="application/json",
        headers=headers,
    )


def internal_error(ctx: Context) -> GatewayError:
    log.exception("request %s failed", ctx.request_id)
    return GatewayError(
        500,
        f"Internal gateway error (request id {ctx.request_id}).",
        type="server_error",
        code="internal_error",
    )


async def lifecycle(
    request: web.Request,
    wire: Wire,
    endpoint: str,
    parse: Callable[[Any], Call],
    forwarder: Forwarder,
) -> web.StreamResponse:
    """Run one proxied call through every step."""
    gw = _gateway(request)
    ctx = Context(wire, endpoint)
    try:
        ctx.key = await authenticate(gw.directory, request)
        call = parse(await read_body(request, gw.max_body))
        ctx.model, ctx.stream, ctx.body = call.model, call.stream, call.body
        ctx.prompt_estimate, ctx.max_output = call.prompt_estimate, call.max_output
        ctx.prompt_bound = (
            tokens.bound(call.body) if call.prompt_bound is None else call.prompt_bound
        )
        ctx.target = route(gw, ctx.key, call.model)
        await admit(ctx, gw.limiter, gw.directory, gw.prices)
        return await forwarder(gw, ctx, request, call)
    except GatewayError as err:
        return await refuse(gw, ctx, err)
    except asyncio.CancelledError:
        # Cut at shutdown: recorded, since the provider bills it (unless already done).
        if not gw.drain.cutting or ctx.recorded:
            raise
        return await refuse(gw, ctx, gw.drain.cut(ctx))
    except Exception:
        return await refuse(gw, ctx, internal_error(ctx))
    finally:
        # Settled by the accountant on the usual paths; this covers every other one.
        await release(ctx)


def _chat(fmt: ClientFormat) -> Forwarder:
    return partial(forward.chat, fmt=fmt)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions"""
    return await lifecycle(
        request, Wire.OPENAI, "chat.completions", openai_chat.parse, _chat(openai_chat.FORMAT)
    )


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages (Anthropic)"""
    return await lifecycle(
        request,
        Wire.ANTHROPIC,
        "messages",
        anthropic_messages.parse,
        _chat(anthropic_messages.FORMAT),
    )


async def generate_content(request: web.Request) -> web.StreamResponse:
    """POST /v1beta/models/{model}:generateContent and :streamGenerateContent (Gemini)"""
    model, _, method = request.match_info["target"].rpartition(":")
    if method not in ("generateContent", "streamGenerateContent") or not model:
        raise web.HTTPNotFound()
    stream = method == "streamGenerateContent"
    sse = request.rel_url.query.get("alt") == "sse"

    def parse(body: Any) -> Call:
        call = gemini.parse(body, model=model.removeprefix("models/"), stream=stream and sse)
        call.array = stream and not sse
        return call

    return await lifecycle(request, Wire.GOOGLE, "generateContent", parse, _chat(gemini.FORMAT))


async def embeddings(request: web.Request) -> web.StreamResponse:
    """POST /v1/embeddings"""
    return await lifecycle(
        request, Wire.OPENAI, "embeddings", openai_endpoints.parse_embeddings, forward.embeddings
    )


async def responses(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses (OpenAI Responses API)"""
    return await lifecycle(
        request, Wire.OPENAI, "responses", openai_endpoints.parse_responses, forward.responses
    )


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages/count_tokens: exact from an Anthropic target, else estimated.

    Counting is free at Anthropic, so it is neither admitted against limits nor
    recorded in the ledger.
    """
    gw = _gateway(request)
    ctx = Context(Wire.ANTHROPIC, "messages.count_tokens")
    try:
        # ctx.key stays unset: a count is not a billed call and not in the ledger.
        key = await authenticate(gw.directory, request)
        call = anthropic_messages.parse_count_tokens(await read_body(request, gw.max_body))
        ctx.model = call.model
        ctx.target = route(gw, key, call.model)
        provider = ctx.target.provider
        if provider.type != "anthropic":
            body = orjson.dumps({"input_tokens": call.prompt_estimate})
            return web.Response(
                body=body,
                content_type="application/json",
                headers={**forward.base_headers(ctx), "x-aigw-token-count": "estimated"},
            )
        from aigw.providers import anthropic

        req = anthropic.ADAPTER.request(
            provider.config,
            provider.api_key,
            "/v1/messages/count_tokens",
            {**call.body, "model": ctx.target.upstream_model},
            request.headers,
        )
        resp = await forward.send(gw, ctx, provider, req)
        try:
            if resp.status >= 400:
                raise await forward.read_error(gw, provider, resp)
            raw, _ = await forward.read_json(gw, provider, resp)
        finally:
            resp.close()
        return web.Response(
            body=redact_bytes(raw, provider.api_key),
            content_type="application/json",
            headers={**forward.base_headers(ctx), "x-aigw-token-count": "exact"},
        )
    except GatewayError as err:
        return await refuse(gw, ctx, err)
    except Exception:
        return await refuse(gw, ctx, internal_error(ctx))


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models: the models this key may use."""
    gw = _gateway(request)
    ctx = Context(Wire.OPENAI, "models")
    try:
        key = await authenticate(gw.directory, request)
    except GatewayError as err:
        return await refuse(gw, ctx, err)
    created = int(time.time())
    team = gw.directory.team(key.team)
    data = [
        {"id": model_id, "object": "model", "created": created, "owned_by": owner}
        for model_id, owner in gw.router.model_ids()
        if gw.permissions.allows(key, team, model_id)
    ]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": data}),
        content_type="application/json",
        headers={"x-request-id": ctx.request_id},
    )
