"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Azure-style base URLs).

OpenAI chat completions is also the hub format, so translating to and from it is
the identity; this adapter still has to ask for and read the stream's usage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aigw.config import ProviderConfig
from aigw.errors import Wire
from aigw.providers.base import (
    CHAT,
    EMBEDDINGS,
    JSON,
    RESPONSES,
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
    upstream_error,
)
from aigw.sse import DONE, Event
from aigw.translate.common import Translated, TranslateOptions
from aigw.usage import Usage, usage_from_openai

# OpenAI chat models that refuse reasoning_effort (a 400): the GPT-4 and GPT-3.5
# families and the chat-tuned GPT-5 snapshots. Others (o-series, GPT-5, and
# OpenAI-compatible servers, which ignore or honour it) get it.
_NO_REASONING = re.compile(r"(?:.*/)?(?:gpt-4|gpt-3\.5|chatgpt-|gpt-5[.\d]*-chat)")
# Reasoning models whose highest effort is "high" (xhigh arrived with GPT-5.1 Codex Max
# and GPT-5.2).
_NO_XHIGH = re.compile(r"(?:.*/)?(?:o\d|gpt-5(?:\.1)?(?:-(?!codex-max)|$))")


def _stream_error(chunk: JSON) -> UpstreamFault:
    err = chunk["error"]
    msg = err.get("message") if isinstance(err, dict) else str(err)
    return stream_error(msg)


def _count(state: StreamState, choices: list[Any]) -> None:
    """Track text length and finish reasons of a chunk's choices."""
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            state.chars += len(content)
        for call in delta.get("tool_calls") or ():
            state.chars += len((call.get("function") or {}).get("arguments") or "")
        if choice.get("finish_reason"):
            state.finished = True


# Chunks that need a closer look: usage, an error, a finish reason. Anything else is
# a content or tool-call delta and goes through untouched. Some compatible servers
# put a space after the colon.
_SPECIAL = re.compile(rb'"(?:usage|finish_reason)": ?[{"]|"error"')
_CONTENT = re.compile(rb'"(?:content|arguments)": ?"((?:[^"\\]|\\.)*)"')


def _content_chars(data: bytes) -> int:
    """Length of the text deltas in a chunk, for a usage estimate (escapes count 2)."""
    return sum(len(m) for m in _CONTENT.findall(data))


class OpenAIStream:
    """Pass an OpenAI chat stream through, taking out usage for the ledger.

    The gateway always asks for ``stream_options.include_usage``; when the client did
    not, the extra usage chunk is dropped here. ``[DONE]`` and the usage chunk are
    held back until the ledger row is committed.
    """

    __slots__ = ("_held", "state", "wants_usage")

    def __init__(self, wants_usage: bool) -> None:
        self.state = StreamState()
        self.wants_usage = wants_usage
        self._held: list[bytes] = []

    def feed(self, event: Event) -> bytes:
        data = event.data
        if data.startswith(b"[DONE]"):
            self.state.done = True
            return b""
        if not _SPECIAL.search(data):
            # A plain content delta, most of a stream: pass it on without parsing.
            self.state.chars += _content_chars(data)
            return event.encode()
        chunk = loads(data)
        if not isinstance(chunk, dict):
            return event.encode()
        if "error" in chunk:
            self.state.error = _stream_error(chunk)
            return b""
        usage = chunk.get("usage")
        choices = chunk.get("choices")
        if usage:
            self.state.usage = usage_from_openai(usage)
            if not choices:
                if self.wants_usage:
                    self._held.append(event.encode())
                return b""
        if choices:
            _count(self.state, choices)
        return event.encode()

    def tail(self) -> bytes:
        return b"".join(self._held) + DONE


class OpenAIHubStream:
    """An OpenAI stream as hub chunks (the identity, minus usage and [DONE])."""

    def __init__(self, model: str) -> None:
        self.state = StreamState()
        self.model = model
        self._usage_chunk: JSON | None = None

    def feed(self, event: Event) -> list[JSON]:
        if event.data.startswith(b"[DONE]"):
            self.state.done = True
            return []
        chunk = loads(event.data)
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self.state.error = _stream_error(chunk)
            return []
        choices = chunk.get("choices")
        if chunk.get("usage"):
            self.state.usage = usage_from_openai(chunk["usage"])
            if not choices:
                self._usage_chunk = chunk
                return []
        if choices:
            _count(self.state, choices)
        return [chunk]

    def final_usage_chunk(self) -> JSON:
        if self._usage_chunk is not None:
            return self._usage_chunk
        u = self.state.usage or Usage()
        return {
            "object": "chat.completion.chunk",
            "model": self.model,
            "choices": [],
            "usage": {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            },
        }


class ResponsesStream:
    """Pass a Responses API stream through; its terminal event carries the usage."""

    _TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def __init__(self) -> None:
        self.state = StreamState()
        self._held: list[bytes] = []

    def feed(self, event: Event) -> bytes:
        data = loads(event.data)
        kind = event.event or (data.get("type") if isinstance(data, dict) else None)
        if not isinstance(data, dict):
            return event.encode()
        if kind == "error":
            err = data.get("error")
            msg = data.get("message") or (err.get("message") if isinstance(err, dict) else err)
            self.state.error = stream_error(msg)
            return b""
        if kind == "response.output_text.delta":
            self.state.chars += len(data.get("delta") or "")
        if kind in self._TERMINAL:
            response = data.get("response") or {}
            self.state.usage = usage_from_openai(response.get("usage"))
            self.state.done = self.state.finished = True
            self._held.append(event.encode())
            return b""
        return event.encode()

    def tail(self) -> bytes:
        return b"".join(self._held)


class OpenAIAdapter(AdapterDefaults):
    request_id_header: str | None = "x-request-id"  # documented in the provider's API reference
    wire = Wire.OPENAI
    capabilities = frozenset({CHAT, EMBEDDINGS, RESPONSES})

    def _headers(self, pc: ProviderConfig, api_key: str | None) -> dict[str, str]:
        headers = {"User-Agent": "aigw", **pc.headers}
        if api_key:
            if pc.auth_header:
                headers[pc.auth_header] = api_key
            else:
                headers["Authorization"] = "Bearer " + api_key
        return headers

    def request(
        self, pc: ProviderConfig, api_key: str | None, path: str, body: JSON
    ) -> UpstreamRequest:
        """POST ``body`` to ``path`` under the provider's base URL."""
        return post(join_url(pc.base_url, path, pc.query), self._headers(pc, api_key), body)

    def models_request(
        self, pc: ProviderConfig, api_key: str | None, cursor: str | None
    ) -> UpstreamRequest | None:
        """GET /models: OpenAI, vLLM, Ollama, LM Studio... all serve it, unpaged."""
        return get(join_url(pc.base_url, "/models", pc.query), self._headers(pc, api_key))

    def models_page(self, payload: JSON) -> ModelPage:
        # {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]};
        # vLLM adds max_model_len, the context window.
        out = data_models(
            payload,
            lambda mid, item: ModelInfo(
                mid,
                created=count(item.get("created")),
                input_token_limit=count(item.get("max_model_len")),
            ),
        )
        return ModelPage(out)

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
        if stream:
            opts = out.get("stream_options")
            out["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        return self.request(pc, api_key, "/chat/completions", out)

    def from_hub(self, hub: JSON, opts: TranslateOptions) -> Translated:
        """A translated (non-OpenAI-client) request for an OpenAI target.

        One rule for every client format: the output limit goes out as
        ``max_completion_tokens``, which every OpenAI chat model accepts, while the
        legacy ``max_tokens`` is rejected by reasoning models (o1/o3/o4, GPT-5). An
        OpenAI client's own body never comes here (native pass-through keeps it).
        """
        hub = dict(hub)
        warnings: list[str] = []
        if "max_tokens" in hub:
            legacy = hub.pop("max_tokens")
            if hub.get("max_completion_tokens") is None and legacy is not None:
                hub["max_completion_tokens"] = legacy
        # The hub's thinking extension (a token budget) has no OpenAI form: the
        # reasoning_effort next to it carries the request.
        hub.pop("thinking", None)
        effort, model = hub.get("reasoning_effort"), opts.upstream_model
        if effort is not None and _NO_REASONING.match(model):
            del hub["reasoning_effort"]
            warnings.append(f"'reasoning_effort' was dropped: {model} does not reason")
        elif effort == "xhigh" and _NO_XHIGH.match(model):
            # Claude Code asks Opus for effort xhigh; older reasoning models stop at high.
            hub["reasoning_effort"] = "high"
            warnings.append(f"'reasoning_effort' xhigh was lowered to high for {model}")
        return Translated(hub, warnings)

    def response_usage(self, payload: JSON) -> Usage | None:
        return usage_from_openai(payload.get("usage"))

    def response_to_hub(self, payload: JSON, model: str, *, request: JSON | None = None) -> JSON:
        return payload

    def native_stream(self, *, client_wants_usage: bool) -> OpenAIStream:
        return OpenAIStream(client_wants_usage)

    def hub_stream(self, model: str, *, request: JSON | None = None) -> OpenAIHubStream:
        return OpenAIHubStream(model)

    def embeddings_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> tuple[UpstreamRequest, list[str]]:
        return self.request(pc, api_key, "/embeddings", {**body, "model": upstream_model}), []

    def embeddings_response(
        self, raw: bytes, payload: JSON, *, model: str, request: JSON, prompt_tokens: int
    ) -> tuple[bytes, Usage | None]:
        return raw, self.response_usage(payload)

    def native_embeddings_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        method: str,
    ) -> UpstreamRequest:
        return self.request(pc, api_key, "/embeddings", {**body, "model": upstream_model})

    def responses_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> UpstreamRequest:
        return self.request(pc, api_key, "/responses", {**body, "model": upstream_model})

    def responses_stream(self) -> ResponsesStream:
        return ResponsesStream()

    def error(
        self, status: int, body: bytes, provider: str, retry_after: str | None
    ) -> UpstreamFault:
        message, type_, code, param = _parse_error(body)
        return upstream_error(
            status,
            message,
            provider,
            type=type_,
            code=code,
            param=param,
            retry_after=retry_after,
        )


def _parse_error(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    payload = loads(body)
    err = payload.get("error") if isinstance(payload, dict) else None

    def s(v: object) -> str | None:
        return v if isinstance(v, str) else None

    if isinstance(err, dict):
        return (
            s(err.get("message")) or "no message",
            s(err.get("type")),
            s(err.get("code")),
            s(err.get("param")),
        )
    if isinstance(err, str):
        return err, None, None, None
    text = body.decode("utf-8", "replace").strip()
    return (text[:500] or "no error body"), None, None, None


ADAPTER = OpenAIAdapter()
