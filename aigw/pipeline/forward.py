"""Step 6, forward: call the target through its adapter, relay the answer, account for it.

When the client and the target speak the same API the body goes through as it came
(only the model is replaced) and the answer comes back byte for byte. Otherwise the
request is translated through the hub format (OpenAI chat completions) and the
answer, streamed or not, is translated back event by event. What a provider can
serve (embeddings, the Responses API natively) its adapter says in ``capabilities``.

The ledger row is committed before the last bytes go out: a JSON answer is sent
only after the commit; a stream's end (``[DONE]``, ``message_stop``, the final
Gemini chunk) is held back until it (:mod:`aigw.pipeline.relay`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from aigw.config import TranslationConfig
from aigw.errors import bad_request
from aigw.formats import Call, ClientFormat, openai_responses
from aigw.formats.openai_responses import stream_error as responses_stream_error
from aigw.pipeline.account import Accountant
from aigw.pipeline.attempts import Attempts
from aigw.pipeline.context import Context, base_headers, cost_header
from aigw.pipeline.relay import Relay, Relayer, Translating
from aigw.pipeline.upstream import (
    Upstream,
    checked_build,
    translate_options,
    unsupported,
    untranslatable,
)
from aigw.providers.base import EMBEDDINGS, RESPONSES, redact_bytes
from aigw.routing.targets import Target
from aigw.translate.common import JSON, TranslationError, clamp_max_tokens
from aigw.usage import Usage

# One attempt of an endpoint: (ctx, call, target, seconds left of the call's deadline).
AttemptFn = Callable[[Context, Call, Target, float], Awaitable[web.StreamResponse]]


class Forward:
    """The step that answers a proxied call: chat, embeddings or responses.

    Each endpoint is one *attempt* at one target, from building the upstream request
    (translated for that target's API) to the client's answer; :class:`Attempts` runs
    attempts over the call's candidates until one answers.
    """

    def __init__(
        self,
        translation: TranslationConfig,
        upstream: Upstream,
        relayer: Relayer,
        accountant: Accountant,
        attempts: Attempts,
        output_limit: Callable[[Target], int | None] = lambda target: None,
    ) -> None:
        self.translation = translation
        self.output_limit = output_limit
        self.upstream = upstream
        self.relayer = relayer
        self.accountant = accountant
        self.attempts = attempts
        self._by_endpoint: dict[str, AttemptFn] = {
            "embeddings": self.embeddings,
            "responses": self.responses,
        }

    def __call__(self, ctx: Context) -> Awaitable[None]:
        call = ctx.call
        assert call is not None
        attempt = self._by_endpoint.get(ctx.endpoint, self.chat)

        def send(ctx: Context, target: Target, left: float) -> Awaitable[web.StreamResponse]:
            return attempt(ctx, call, target, left)

        # Not awaited here: the loop's coroutine is the step (see Attempts.run).
        return self.attempts.run(ctx, send)

    async def finish_json(
        self,
        ctx: Context,
        body: bytes,
        usage: Usage | None,
        prompt_estimate: int,
        *,
        hub: JSON | None = None,
        raw: bool = False,
    ) -> web.Response:
        """Record a non-streamed answer, then send it. A cache hit is replayed through
        here too. For the response cache (``ctx.capture``): ``hub``, the answer in the
        hub format; ``raw``, the body may be stored as it is."""
        if usage is None:
            usage, ctx.usage_estimated = Usage(prompt_estimate, 0), True
        ctx.usage = usage
        await self.accountant.record(ctx)
        body = redact_bytes(body, ctx.target.provider.secrets if ctx.target else None)
        capture = ctx.capture
        if capture is not None and (hub is not None or raw):
            capture.json(ctx, body if hub is None else hub)
        if ctx.restorer is not None:
            body = ctx.restorer.json(body)
        return web.Response(
            body=body,
            content_type="application/json",
            headers={**base_headers(ctx), "x-aigw-cost-usd": cost_header(ctx)},
        )

    async def chat(
        self, ctx: Context, call: Call, target: Target, left: float, *, translate: bool = False
    ) -> web.StreamResponse:
        """A chat call (OpenAI chat, Anthropic messages, Gemini generateContent) to any
        target, translated for that target; ``translate``: through the hub even when the
        wires match (a Responses call to an OpenAI-wire target without that API)."""
        assert ctx.fmt is not None and ctx.request is not None
        fmt: ClientFormat = ctx.fmt
        request = ctx.request
        provider = target.provider
        adapter = provider.adapter
        model = target.upstream_model
        native = not translate and adapter.wire is fmt.wire
        client_headers: Mapping[str, str] | None = request.headers if native else None
        hub: JSON | None = None  # the request in the hub format, when translated
        if native:
            body = call.body
        else:
            opts = translate_options(self.translation, model)
            try:
                to_hub = fmt.to_hub(call, opts)
                hub = to_hub.body
                limit = self.output_limit(target)
                if limit is not None:
                    hub, clamped = clamp_max_tokens(hub, limit)
                    if clamped is not None:
                        to_hub.warnings.append(clamped)
                translated = adapter.from_hub(hub, opts)
            except TranslationError as exc:
                raise unsupported(exc) from None
            body = translated.body
            ctx.warnings.extend(
                w for w in to_hub.warnings + translated.warnings if w not in ctx.warnings
            )
        upstream = self.upstream
        resp = await upstream.send(
            ctx,
            provider,
            lambda key: adapter.chat_request(
                provider.config,
                key,
                body,
                upstream_model=model,
                stream=call.stream,
                client_headers=client_headers,
            ),
            left,
        )
        try:
            if resp.status >= 400:
                raise await upstream.read_error(provider, resp)
            if call.stream:
                relay: Relay = (
                    adapter.native_stream(client_wants_usage=call.wants_usage)
                    if native
                    else Translating(
                        adapter.hub_stream(model, request=hub), fmt.stream(call, model)
                    )
                )
                return await self.relayer.relay(
                    ctx, request, resp, relay, fmt.stream_error, call.prompt_estimate
                )
            raw, payload = await upstream.read_json(provider, resp)
            if ctx.body_retention is not None:
                ctx.answer_chunks = [raw]
            hub_answer: JSON | None = None
            if not native:
                try:
                    hub_answer = adapter.response_to_hub(payload, model, request=hub)
                    raw = orjson.dumps(fmt.from_hub(hub_answer, model))
                except TranslationError as exc:
                    raise untranslatable(provider, exc) from None
            elif ctx.capture is not None:  # the cache keeps answers in the hub format
                # Untranslatable: passed through to the client all the same, not cached.
                with contextlib.suppress(TranslationError):
                    hub_answer = adapter.response_to_hub(payload, model)
            if call.array:  # Gemini's streamGenerateContent without alt=sse: a JSON array
                raw = b"[" + raw + b"]"
            return await self.finish_json(
                ctx, raw, adapter.response_usage(payload), call.prompt_estimate, hub=hub_answer
            )
        finally:
            resp.close()

    async def embeddings(
        self, ctx: Context, call: Call, target: Target, left: float
    ) -> web.StreamResponse:
        """POST /v1/embeddings to a provider whose adapter offers embeddings."""
        provider = target.provider
        adapter = provider.adapter
        model = target.upstream_model
        if EMBEDDINGS not in adapter.capabilities:
            raise bad_request(
                f"Provider '{provider.name}' ({provider.type}) offers no embeddings; "
                "use an openai or gemini provider.",
                param="model",
                code="unsupported_model",
            )
        raw, payload = await self.upstream.call(
            ctx,
            provider,
            checked_build(
                ctx,
                lambda key: adapter.embeddings_request(
                    provider.config, key, call.body, upstream_model=model
                ),
            ),
            left,
        )
        try:
            raw, usage = adapter.embeddings_response(
                raw, payload, model=model, request=call.body, prompt_tokens=call.prompt_estimate
            )
        except TranslationError as exc:
            raise untranslatable(provider, exc) from None
        return await self.finish_json(ctx, raw, usage, call.prompt_estimate, raw=True)

    async def responses(
        self, ctx: Context, call: Call, target: Target, left: float
    ) -> web.StreamResponse:
        """POST /v1/responses: passed through to a provider that serves that API,
        translated through the hub (as a chat call) to any other."""
        assert ctx.request is not None
        provider = target.provider
        adapter = provider.adapter
        if RESPONSES not in adapter.capabilities:
            ctx.fmt = openai_responses.bind(call)
            return await self.chat(ctx, call, target, left, translate=True)
        model = target.upstream_model
        upstream = self.upstream
        resp = await upstream.send(
            ctx,
            provider,
            lambda key: adapter.responses_request(
                provider.config, key, call.body, upstream_model=model
            ),
            left,
        )
        try:
            if resp.status >= 400:
                raise await upstream.read_error(provider, resp)
            if call.stream:
                return await self.relayer.relay(
                    ctx,
                    ctx.request,
                    resp,
                    adapter.responses_stream(),
                    responses_stream_error,
                    call.prompt_estimate,
                )
            raw, payload = await upstream.read_json(provider, resp)
            if ctx.body_retention is not None:
                ctx.answer_chunks = [raw]
            return await self.finish_json(
                ctx, raw, adapter.response_usage(payload), call.prompt_estimate
            )
        finally:
            resp.close()
