"""The HTTP endpoints: each names its wire format, body parser and client format,
then runs the pipeline (:mod:`aigw.pipeline`) over a fresh context."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aigw.errors import GatewayError, Wire, error_body
from aigw.formats import Call, anthropic_messages, gemini, openai_chat, openai_endpoints
from aigw.pipeline import PIPELINES
from aigw.pipeline.context import Context, new_request_id


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions"""
    ctx = Context(Wire.OPENAI, "chat.completions", request, openai_chat.parse, openai_chat.FORMAT)
    return await request.app[PIPELINES].proxy.run(ctx)


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages (Anthropic)"""
    ctx = Context(
        Wire.ANTHROPIC,
        "messages",
        request,
        anthropic_messages.parse,
        anthropic_messages.FORMAT,
    )
    return await request.app[PIPELINES].proxy.run(ctx)


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

    ctx = Context(Wire.GOOGLE, "generateContent", request, parse, gemini.FORMAT)
    return await request.app[PIPELINES].proxy.run(ctx)


async def embeddings(request: web.Request) -> web.StreamResponse:
    """POST /v1/embeddings"""
    ctx = Context(Wire.OPENAI, "embeddings", request, openai_endpoints.parse_embeddings)
    return await request.app[PIPELINES].proxy.run(ctx)


async def responses(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses (OpenAI Responses API)"""
    ctx = Context(Wire.OPENAI, "responses", request, openai_endpoints.parse_responses)
    return await request.app[PIPELINES].proxy.run(ctx)


async def responses_websocket(request: web.Request) -> web.StreamResponse:
    """GET /v1/responses: the Responses API's WebSocket transport, which Codex CLI tries
    before HTTPS. It is not served; 426 makes the client fall back to POST at once
    (other statuses make Codex retry the upgrade with backoff for seconds)."""
    err = GatewayError(
        426,
        "The Responses API WebSocket transport is not served by this gateway; "
        "use POST /v1/responses.",
        code="websocket_not_supported",
    )
    return web.Response(
        status=426,
        body=error_body(err, Wire.OPENAI),
        content_type="application/json",
        headers={"x-request-id": new_request_id()},
    )


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages/count_tokens: exact from an Anthropic target, else estimated.

    Counting is free at Anthropic, so it is neither admitted against limits nor
    recorded in the ledger.
    """
    ctx = Context(
        Wire.ANTHROPIC,
        "messages.count_tokens",
        request,
        anthropic_messages.parse_count_tokens,
        billed=False,
    )
    return await request.app[PIPELINES].count_tokens.run(ctx)


async def list_models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models: the models this key may use."""
    ctx = Context(Wire.OPENAI, "models", request, billed=False)
    return await request.app[PIPELINES].models.run(ctx)
