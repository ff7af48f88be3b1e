"""The HTTP endpoints: each names its wire format, body parser and client format,
then runs the pipeline (:mod:`aigw.pipeline`) over a fresh context."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aigw.errors import GatewayError, Wire, error_body
from aigw.formats import (
    Call,
    anthropic_messages,
    gemini,
    gemini_calls,
    openai_chat,
    openai_endpoints,
)
from aigw.formats.validate import model_name
from aigw.pipeline import PIPELINES
from aigw.pipeline.context import Context, new_request_id

# The API versions under which Gemini clients call (google-genai: v1beta, or v1).
GEMINI_VERSIONS = ("v1beta", "v1", "v1alpha")


def listing_wire(request: web.Request) -> Wire:
    """Which API a model-listing request speaks. Under ``/v1/models`` three share the
    path: google-genai sends its key as ``x-goog-api-key``, the Anthropic SDKs send
    ``anthropic-version``, anything else is OpenAI."""
    if not request.path.startswith("/v1/"):
        return Wire.GOOGLE  # /v1beta, /v1alpha
    if "x-goog-api-key" in request.headers:
        return Wire.GOOGLE
    if "anthropic-version" in request.headers:
        return Wire.ANTHROPIC
    return Wire.OPENAI


def wire_of(request: web.Request) -> Wire:
    """The API a request speaks, for an error the router answers (unknown path,
    wrong method): its envelope."""
    path = request.path
    if path.startswith("/v1/messages"):
        return Wire.ANTHROPIC
    first, _, rest = path.lstrip("/").partition("/")
    if first in GEMINI_VERSIONS and rest.startswith("models"):
        last = rest.rpartition("/")[2]
        return Wire.GOOGLE if ":" in last else listing_wire(request)
    if first in ("v1beta", "v1alpha"):
        return Wire.GOOGLE
    return Wire.OPENAI


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


def _not_found(request: web.Request, what: str) -> GatewayError:
    return GatewayError(
        404,
        f"{request.method} {request.path}: {what} is not served by this gateway.",
        code="not_found",
    )


async def gemini_model_method(request: web.Request) -> web.StreamResponse:
    """POST /v1beta/models/{model}:{method}: the Gemini methods the gateway serves;
    any other is a 404 in Google's envelope."""
    model, _, method = request.match_info["target"].rpartition(":")
    model = model.removeprefix("models/")
    if method in ("generateContent", "streamGenerateContent") and model:
        return await generate_content(request)
    if method == "countTokens" and model:
        return await gemini_count_tokens(request, model)
    if method in gemini_calls.EMBED_METHODS and model:
        return await gemini_embed(request, model, method)
    err = _not_found(request, f"the method '{method}'" if model and method else "this path")
    return await request.app[PIPELINES].models.refuse(Context(Wire.GOOGLE, method, request), err)


async def gemini_count_tokens(request: web.Request, model: str) -> web.StreamResponse:
    """POST /v1beta/models/{model}:countTokens: exact from a target that counts, else
    estimated; free, so neither admitted nor billed."""

    def parse(body: Any) -> Call:
        return gemini_calls.parse_count_tokens(body, model=model)

    ctx = Context(Wire.GOOGLE, "countTokens", request, parse, gemini.FORMAT, billed=False)
    return await request.app[PIPELINES].count_tokens.run(ctx)


async def gemini_embed(request: web.Request, model: str, method: str) -> web.StreamResponse:
    """POST /v1beta/models/{model}:embedContent and :batchEmbedContents"""

    def parse(body: Any) -> Call:
        return gemini_calls.parse_embed(body, model=model, method=method)

    ctx = Context(Wire.GOOGLE, method, request, parse)
    return await request.app[PIPELINES].gemini_embed.run(ctx)


async def generate_content(request: web.Request) -> web.StreamResponse:
    """POST /v1beta/models/{model}:generateContent and :streamGenerateContent (Gemini)"""
    model, _, method = request.match_info["target"].rpartition(":")
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
        anthropic_messages.FORMAT,
        billed=False,
    )
    return await request.app[PIPELINES].count_tokens.run(ctx)


async def list_models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models (OpenAI, Anthropic or Gemini, by the headers; see
    :func:`listing_wire`) and GET /v1beta/models: the models this key may use."""
    ctx = Context(listing_wire(request), "models", request, billed=False)
    return await request.app[PIPELINES].models.run(ctx)


async def get_model(request: web.Request) -> web.StreamResponse:
    """GET /v1/models/{model} (OpenAI's and Anthropic's retrieve, Gemini's models.get)
    and GET /v1beta/models/{model}: one model this key may use."""
    wire = listing_wire(request)
    ctx = Context(wire, "models", request, billed=False)
    name = request.match_info["target"]
    if wire is Wire.GOOGLE:
        name = name.removeprefix("models/")
    pipeline = request.app[PIPELINES].models
    try:
        ctx.model = model_name(name)
    except GatewayError as err:
        return await pipeline.refuse(ctx, err)
    return await pipeline.run(ctx)
