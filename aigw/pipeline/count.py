"""Token counts (Anthropic ``/v1/messages/count_tokens``, Gemini ``:countTokens``):
exact from a target that counts, else estimated.

A client of the target's own API is passed through (its answer too); any other is
translated through the hub to the target's format, and the target's count answered
in the client's. A target that cannot count (OpenAI) gets the gateway's estimate.
Counting is free at Anthropic and Google, so it is neither admitted against limits
nor recorded in the ledger (the endpoint's context is not billed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from aigw.config import TranslationConfig
from aigw.errors import Wire
from aigw.pipeline.context import Context, base_headers
from aigw.pipeline.upstream import Upstream, translate_options, unsupported
from aigw.providers.base import COUNT_TOKENS, UpstreamFault, redact_bytes
from aigw.translate.common import TranslationError

# A count in the client's format.
_ANSWER: dict[Wire, Callable[[int], dict[str, Any]]] = {
    Wire.ANTHROPIC: lambda n: {"input_tokens": n},
    Wire.GOOGLE: lambda n: {"totalTokens": n},
}


class CountTokens:
    """The step that answers a count: the provider's own count, or our estimate."""

    def __init__(self, translation: TranslationConfig, upstream: Upstream) -> None:
        self.translation = translation
        self.upstream = upstream

    def answer(self, ctx: Context, n: int, how: str) -> web.Response:
        return web.Response(
            body=orjson.dumps(_ANSWER[ctx.wire](n)),
            content_type="application/json",
            headers={**base_headers(ctx), "x-aigw-token-count": how},
        )

    async def __call__(self, ctx: Context) -> None:
        assert ctx.target is not None and ctx.call is not None and ctx.request is not None
        assert ctx.fmt is not None
        call = ctx.call
        provider = ctx.target.provider
        adapter = provider.adapter
        model = ctx.target.upstream_model
        if COUNT_TOKENS not in adapter.capabilities:
            ctx.response = self.answer(ctx, call.prompt_estimate, "estimated")
            return
        native = adapter.wire is ctx.fmt.wire
        if native:
            body = call.body
        else:
            opts = translate_options(self.translation, model)
            try:
                body = adapter.from_hub(ctx.fmt.to_hub(call, opts).body, opts).body
            except TranslationError as exc:
                raise unsupported(exc) from None
        headers = ctx.request.headers if native else None
        raw, payload = await self.upstream.call(
            ctx,
            provider,
            lambda key: adapter.count_tokens_request(
                provider.config, key, body, upstream_model=model, client_headers=headers
            ),
        )
        if native:
            ctx.response = web.Response(
                body=redact_bytes(raw, provider.secrets),
                content_type="application/json",
                headers={**base_headers(ctx), "x-aigw-token-count": "exact"},
            )
            return
        n = adapter.count_tokens_total(payload)
        if n is None:
            raise UpstreamFault(
                502,
                f"Provider '{provider.name}' answered a token count without a count.",
                code="upstream_bad_response",
            ).to_error(provider.secrets)
        ctx.response = self.answer(ctx, n, "exact")
