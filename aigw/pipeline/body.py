"""The body step: read the request's JSON (bounded in size, time and depth), parse it.

It runs after authenticate (an unknown caller's body is never read) and before
route, which needs the model the body names.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
from aiohttp import web

from aigw import tokens
from aigw.cache.plans import Plans
from aigw.config import ServerConfig
from aigw.errors import GatewayError
from aigw.formats.validate import shown
from aigw.pipeline.context import CLIENT_GONE, Context

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


async def read_raw(request: web.Request, limit: int, seconds: float) -> bytes:
    """The request's body, decompressed: 413 if too large, 415 for an unknown
    encoding, 408 if it trickles in too slowly, 499 if the client hangs up
    mid-upload. :func:`parse_json` reads it."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        if request.content.is_eof():  # already all here (the common case): no timer
            raw = await request.read()
        else:
            async with asyncio.timeout(seconds):  # a body trickled in forever (slowloris)
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    except TimeoutError:
        raise GatewayError(
            408, f"The request body did not arrive within {seconds:g} s.", code="request_timeout"
        ) from None
    except ConnectionError:
        raise GatewayError(
            CLIENT_GONE,
            "The client closed the connection before sending the whole request.",
            code="client_closed",
        ) from None
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        raw = decode_body(raw, encoding, limit)
    return raw


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON: 400 if empty, not JSON or nested too deeply."""
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


class ReadBody:
    """Read and parse the body into ``ctx.call`` and the estimates admission needs."""

    def __init__(self, server: ServerConfig, plans: Plans | None = None) -> None:
        self.server = server
        self.plans = plans  # the response cache's hit plans (aigw.cache.plans)

    async def __call__(self, ctx: Context) -> None:
        assert ctx.request is not None and ctx.parse is not None
        server = self.server
        limit = int(server.max_request_mb * 1024 * 1024)
        ctx.raw_body = raw = await read_raw(ctx.request, limit, server.body_timeout)
        plans = self.plans
        if plans is not None:
            plan = plans.find(ctx, raw)
            if plan is not None:
                plan.apply(ctx)  # as it was for the same call from the same key
                return
        call = ctx.parse(parse_json(raw))
        ctx.call = call
        ctx.model, ctx.stream, ctx.body = call.model, call.stream, call.body
        ctx.prompt_estimate, ctx.max_output = call.prompt_estimate, call.max_output
        ctx.prompt_bound = (
            tokens.bound(call.body) if call.prompt_bound is None else call.prompt_bound
        )
