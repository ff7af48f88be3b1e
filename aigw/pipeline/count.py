"""POST /v1/messages/count_tokens: exact from a target that counts, else estimated.

Counting is free at Anthropic, so it is neither admitted against limits nor
recorded in the ledger (the endpoint's context is not billed).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from aigw.pipeline.context import Context, base_headers
from aigw.pipeline.upstream import Upstream
from aigw.providers.base import COUNT_TOKENS, redact_bytes


class CountTokens:
    """The step that answers a count: the provider's own count, or our estimate."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def __call__(self, ctx: Context) -> None:
        assert ctx.target is not None and ctx.call is not None and ctx.request is not None
        call = ctx.call
        provider = ctx.target.provider
        adapter = provider.adapter
        if COUNT_TOKENS not in adapter.capabilities:
            ctx.response = web.Response(
                body=orjson.dumps({"input_tokens": call.prompt_estimate}),
                content_type="application/json",
                headers={**base_headers(ctx), "x-aigw-token-count": "estimated"},
            )
            return
        model, headers = ctx.target.upstream_model, ctx.request.headers
        raw, _ = await self.upstream.call(
            ctx,
            provider,
            lambda key: adapter.count_tokens_request(
                provider.config, key, call.body, upstream_model=model, client_headers=headers
            ),
        )
        ctx.response = web.Response(
            body=redact_bytes(raw, provider.secrets),
            content_type="application/json",
            headers={**base_headers(ctx), "x-aigw-token-count": "exact"},
        )
