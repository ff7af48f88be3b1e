"""Gemini clients' embeddings (``:embedContent``, ``:batchEmbedContents``): the
forward step of their pipeline.

To a target of the same API (Gemini) the call goes as it came, with the model
replaced, and the answer comes back as it was. To a target that embeds in OpenAI's
format it is translated to ``/v1/embeddings`` and back
(:mod:`aigw.translate.gemini.client_embeddings`). Billed and recorded like any
embeddings call: the ledger row is committed before the answer is sent; retried and
failed over like any call (:mod:`aigw.pipeline.attempts`).
"""

from __future__ import annotations

from collections.abc import Awaitable

import orjson
from aiohttp import web

from aigw.errors import bad_request
from aigw.pipeline.account import Accountant
from aigw.pipeline.attempts import Attempts
from aigw.pipeline.context import Context, base_headers, cost_header
from aigw.pipeline.upstream import Upstream, checked_build, untranslatable
from aigw.providers.base import EMBEDDINGS, redact_bytes
from aigw.routing.targets import Target
from aigw.translate.common import TranslationError
from aigw.translate.gemini.client_embeddings import (
    embed_requests,
    gemini_embed_to_openai,
    openai_to_gemini_embed,
)
from aigw.usage import Usage


class GeminiEmbed:
    """The step that answers a Gemini client's embeddings call: one attempt per target
    of the route, with the same retries and failover as every other call."""

    def __init__(self, upstream: Upstream, accountant: Accountant, attempts: Attempts) -> None:
        self.upstream = upstream
        self.accountant = accountant
        self.attempts = attempts

    def __call__(self, ctx: Context) -> Awaitable[None]:
        return self.attempts.run(ctx, self.attempt)

    async def attempt(self, ctx: Context, target: Target, left: float) -> web.StreamResponse:
        call = ctx.call
        assert call is not None
        provider = target.provider
        adapter = provider.adapter
        model = target.upstream_model
        method = ctx.endpoint  # embedContent or batchEmbedContents
        pc = provider.config
        if adapter.wire is ctx.wire:
            raw, payload = await self.upstream.call(
                ctx,
                provider,
                lambda key: adapter.native_embeddings_request(
                    pc, key, call.body, upstream_model=model, method=method
                ),
                left,
            )
            usage = adapter.response_usage(payload)
            if usage is not None and not usage.prompt_tokens:
                usage = None  # no usageMetadata (Gemini's embeddings often have none)
        elif EMBEDDINGS in adapter.capabilities:
            try:
                translated = gemini_embed_to_openai(call.body, method=method, upstream_model=model)
            except TranslationError as exc:
                raise bad_request(exc.message, param=exc.param) from None
            ctx.warnings.extend(w for w in translated.warnings if w not in ctx.warnings)
            raw, payload = await self.upstream.call(
                ctx,
                provider,
                checked_build(
                    ctx,
                    lambda key: adapter.embeddings_request(
                        pc, key, translated.body, upstream_model=model
                    ),
                ),
                left,
            )
            try:
                raw, usage = adapter.embeddings_response(
                    raw,
                    payload,
                    model=model,
                    request=translated.body,
                    prompt_tokens=call.prompt_estimate,
                )
                answer = openai_to_gemini_embed(
                    orjson.loads(raw), method=method, count=len(embed_requests(call.body, method))
                )
            except (TranslationError, orjson.JSONDecodeError) as exc:
                message = getattr(exc, "message", "the answer is not JSON")
                raise untranslatable(provider, TranslationError(message)) from None
            raw = orjson.dumps(answer)
        else:
            raise bad_request(
                f"Provider '{provider.name}' ({provider.type}) offers no embeddings; "
                "use a gemini or openai provider.",
                param="model",
                code="unsupported_model",
            )
        if usage is None:
            usage, ctx.usage_estimated = Usage(call.prompt_estimate, 0), True
        ctx.usage = usage
        await self.accountant.record(ctx)
        return web.Response(
            body=redact_bytes(raw, provider.secrets),
            content_type="application/json",
            headers={**base_headers(ctx), "x-aigw-cost-usd": cost_header(ctx)},
        )
