"""The request lifecycle, in one place.

Every proxied call walks the same steps in this order:

1. authenticate  -- gateway key -> key record (401)
2. admit         -- rate limits and budgets (429)          [later issue]
3. scrub         -- PII and secrets                         [later issue]
4. route         -- model name -> provider + upstream model (404)
5. cache         -- replay an identical earlier answer      [later issue]
6. forward       -- call the provider, relay, commit the ledger row

A step refuses by raising :class:`GatewayError`; :func:`refuse` records the refusal
(when the caller is known) and renders it in the envelope of the client's API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web

from aigw.errors import GatewayError, Wire, error_body
from aigw.formats import openai_chat
from aigw.pipeline import forward
from aigw.pipeline.authenticate import authenticate
from aigw.pipeline.context import Context

log = logging.getLogger("aigw.handler")


def _gateway(request: web.Request) -> Any:
    from aigw.app import GATEWAY

    return request.app[GATEWAY]


async def read_body(request: web.Request, limit: int) -> Any:
    """The request's JSON body: 413 if too large, 400 if empty or not JSON."""
    too_large = GatewayError(
        413,
        f"The request body is larger than this gateway accepts ({limit // (1024 * 1024)} MiB).",
        code="request_too_large",
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if not raw.strip():
        raise GatewayError(
            400, "The request body is empty; expected a JSON object.", code="invalid_json"
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            400, f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from None


async def refuse(gw: Any, ctx: Context, err: GatewayError) -> web.Response:
    """Record a refused or failed call (when the caller is known) and render the error."""
    ctx.status, ctx.error = err.status, err.message
    if ctx.key is not None:
        try:
            await gw.accountant.record(ctx)
        except GatewayError:
            log.error("request %s: could not record the failed call", ctx.request_id)
    headers = {**forward.base_headers(ctx), **err.headers}
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


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions"""
    gw = _gateway(request)
    ctx = Context(Wire.OPENAI, "chat.completions")
    try:
        ctx.key = authenticate(gw.keys, request)
        call = openai_chat.parse(await read_body(request, gw.max_body))
        ctx.model, ctx.stream, ctx.body = call.model, call.stream, call.body
        ctx.target = gw.router.route(call.model)
        return await forward.chat(gw, ctx, request, call)
    except GatewayError as err:
        return await refuse(gw, ctx, err)
    except Exception:
        return await refuse(gw, ctx, internal_error(ctx))


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models: the models this key may use."""
    gw = _gateway(request)
    ctx = Context(Wire.OPENAI, "models")
    try:
        authenticate(gw.keys, request)
    except GatewayError as err:
        return await refuse(gw, ctx, err)
    created = int(time.time())
    data = [
        {"id": model_id, "object": "model", "created": created, "owned_by": owner}
        for model_id, owner in gw.router.model_ids()
    ]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": data}),
        content_type="application/json",
        headers={"x-request-id": ctx.request_id},
    )
