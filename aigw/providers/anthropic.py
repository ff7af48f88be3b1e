"""Anthropic's Messages API (``x-api-key``, ``anthropic-version``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aigw.config import ProviderConfig
from aigw.errors import Wire, openai_error_kind
from aigw.providers.base import (
    CHAT,
    COUNT_TOKENS,
    JSON,
    AdapterDefaults,
    ModelInfo,
    ModelPage,
    StreamState,
    UpstreamFault,
    UpstreamRequest,
    count,
    data_models,
    get,
    join_url,
    loads,
    post,
    stream_error,
    text,
    upstream_error,
)
from aigw.sse import Event
from aigw.translate import anthropic as tr
from aigw.translate.common import Translated, TranslateOptions
from aigw.usage import Usage

# Client headers worth passing on when an Anthropic client talks to an Anthropic
# provider: the API version it was written for and the betas it opted into.
_PASSED_HEADERS = ("anthropic-version", "anthropic-beta")

# Messages fields that only shape generation: /v1/messages/count_tokens refuses them
# ("max_tokens: Extra inputs are not permitted"), and a request translated from
# another format always has max_tokens.
_NOT_COUNTED = frozenset(
    {
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "service_tier",
    }
)


def _unix(value: object) -> int | None:
    """An RFC 3339 time (``created_at``) as Unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return None


def _error_event(data: JSON) -> UpstreamFault:
    raw = data.get("error")
    err: JSON = raw if isinstance(raw, dict) else {}
    status = 529 if err.get("type") == "overloaded_error" else 502
    return stream_error(err.get("message") or "unknown", status=status)


class AnthropicStream:
    """Pass an Anthropic stream through; usage comes from message_start/message_delta.

    ``message_stop`` ends the stream, so it is held until the ledger row is committed.
    """

    def __init__(self) -> None:
        self.state = StreamState()
        self._raw: JSON = {}
        self._held: list[bytes] = []

    def _usage(self, u: Any) -> None:
        if isinstance(u, dict):
            # message_delta counts are cumulative; keep message_start's other fields.
            self._raw.update({k: v for k, v in u.items() if v is not None})
            self.state.usage = tr.usage_from_anthropic(self._raw)

    def feed(self, event: Event) -> bytes:
        data = loads(event.data)
        if not isinstance(data, dict):
            return event.encode()
        kind = event.event or data.get("type")
        if kind == "message_start":
            self._usage((data.get("message") or {}).get("usage"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            self.state.chars += len(delta.get("text") or delta.get("partial_json") or "")
        elif kind == "message_delta":
            self._usage(data.get("usage"))
            if (data.get("delta") or {}).get("stop_reason"):
                self.state.finished = True
        elif kind == "message_stop":
            self.state.done = True
            self._held.append(event.encode())
            return b""
        elif kind == "error":
            self.state.error = _error_event(data)
            return b""
        return event.encode()

    def tail(self) -> bytes:
        return b"".join(self._held)


class AnthropicHubStream:
    """An Anthropic stream as hub chunks, via the translator."""

    def __init__(self, model: str) -> None:
        self.state = StreamState()
        self._tr = tr.MessagesToChatStream(model=model)

    def feed(self, event: Event) -> list[JSON]:
        if event.event == "ping":  # keep-alive: nothing to translate
            return []
        data = loads(event.data)
        if not isinstance(data, dict):
            return []
        kind = event.event or str(data.get("type", ""))
        try:
            chunks = self._tr.feed(kind, data)
        except tr.AnthropicStreamError:
            self.state.error = _error_event(data)
            return []
        state = self.state
        if kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                state.chars += len(delta.get("text") or delta.get("partial_json") or "")
        elif kind in ("message_start", "message_delta"):
            state.usage = self._tr.usage
            if self._tr.finish_reason is not None:
                state.finished = True
        elif kind == "message_stop":
            state.done = True
        return chunks

    def final_usage_chunk(self) -> JSON:
        return self._tr.final_usage_chunk()


class AnthropicAdapter(AdapterDefaults):
    request_id_header: str | None = "request-id"  # documented in the provider's API reference
    wire = Wire.ANTHROPIC
    capabilities = frozenset({CHAT, COUNT_TOKENS})

    def headers(
        self, pc: ProviderConfig, api_key: str | None, client_headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        headers = {"User-Agent": "aigw", "anthropic-version": tr.DEFAULT_VERSION}
        for name in _PASSED_HEADERS:
            value = client_headers.get(name) if client_headers else None
            if value:
                headers[name] = value
        headers.update(pc.headers)
        if api_key:
            headers[pc.auth_header or "x-api-key"] = api_key
        return headers

    def request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        path: str,
        body: JSON,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        return post(
            join_url(pc.base_url, path, pc.query), self.headers(pc, api_key, client_headers), body
        )

    def chat_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        stream: bool,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        out = dict(body)
        out["model"] = upstream_model
        out["stream"] = stream
        return self.request(pc, api_key, "/v1/messages", out, client_headers)

    def from_hub(self, hub: JSON, opts: TranslateOptions) -> Translated:
        return tr.chat_to_messages_request(hub, opts)

    def response_usage(self, payload: JSON) -> Usage | None:
        return tr.usage_from_anthropic(payload.get("usage"))

    def response_to_hub(self, payload: JSON, model: str, *, request: JSON | None = None) -> JSON:
        return tr.messages_to_chat_response(payload, model=model)

    def native_stream(self, *, client_wants_usage: bool) -> AnthropicStream:
        return AnthropicStream()

    def hub_stream(self, model: str, *, request: JSON | None = None) -> AnthropicHubStream:
        return AnthropicHubStream(model)

    def count_tokens_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        out = {k: v for k, v in body.items() if k not in _NOT_COUNTED}
        out["model"] = upstream_model
        return self.request(pc, api_key, "/v1/messages/count_tokens", out, client_headers)

    def count_tokens_total(self, payload: JSON) -> int | None:
        return count(payload.get("input_tokens"))

    def models_request(
        self, pc: ProviderConfig, api_key: str | None, cursor: str | None
    ) -> UpstreamRequest | None:
        """GET /v1/models, 1000 a page (the most it allows), after the last page's id."""
        query = {**pc.query, "limit": "1000"}
        if cursor is not None:
            query["after_id"] = cursor
        return get(join_url(pc.base_url, "/v1/models", query), self.headers(pc, api_key, None))

    def models_page(self, payload: JSON) -> ModelPage:
        # {"data": [{"type": "model", "id", "display_name", "created_at"}],
        #  "has_more", "first_id", "last_id"}
        out = data_models(
            payload,
            lambda mid, item: ModelInfo(
                mid,
                display_name=text(item.get("display_name")),
                created=_unix(item.get("created_at")),
                input_token_limit=count(item.get("max_input_tokens")),
                output_token_limit=count(item.get("max_tokens")),
            ),
        )
        last = payload.get("last_id")
        more = payload.get("has_more") is True and isinstance(last, str) and bool(last)
        return ModelPage(out, last if more else None)

    def error(
        self, status: int, body: bytes, provider: str, retry_after: str | None
    ) -> UpstreamFault:
        message, etype = tr.parse_anthropic_error(body)
        type_, code = openai_error_kind(status, etype, message)
        return upstream_error(
            status, message, provider, type=type_, code=code, retry_after=retry_after
        )


ADAPTER = AnthropicAdapter()
