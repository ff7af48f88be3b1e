"""Google's Gemini API: generateContent, streamGenerateContent (``alt=sse``), embeddings."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from aigw.config import ProviderConfig
from aigw.errors import Wire, openai_error_kind
from aigw.providers.base import (
    CHAT,
    COUNT_TOKENS,
    EMBEDDINGS,
    JSON,
    AdapterDefaults,
    ModelInfo,
    ModelPage,
    StreamState,
    UpstreamFault,
    UpstreamRequest,
    count,
    get,
    join_url,
    listed_id,
    loads,
    post,
    segment,
    stream_error,
    text,
    upstream_error,
)
from aigw.sse import Event
from aigw.translate import gemini as tr
from aigw.translate.common import Translated, TranslateOptions, TranslationError
from aigw.translate.tool_ids import conversation_seed
from aigw.usage import Usage


def _stream_error(data: JSON) -> UpstreamFault:
    err = data["error"] if isinstance(data.get("error"), dict) else {}
    return stream_error(err.get("message") or data["error"])


def _observe(state: StreamState, data: JSON) -> None:
    """Usage, text length and finish reasons of one stream object."""
    finishing = False
    for cand in data.get("candidates") or ():
        if not isinstance(cand, dict):
            continue
        for part in (cand.get("content") or {}).get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                state.chars += len(part["text"])
        if cand.get("finishReason"):
            state.finished = finishing = True
    # Google repeats the running usage on every chunk: read it on the first (the
    # prompt count, should the stream break) and on the last, not on each.
    if state.usage is None or finishing or not data.get("candidates"):
        meta = data.get("usageMetadata")
        if isinstance(meta, dict) and any(k.endswith("TokenCount") for k in meta):
            state.usage = tr.usage_from_gemini(meta)


class GeminiStream:
    """Pass a Gemini stream through. Google sends no end marker: the chunk with the
    finish reason is the last one, so that chunk waits for the ledger commit."""

    def __init__(self) -> None:
        self.state = StreamState()
        self._held: list[bytes] = []

    def feed(self, event: Event) -> bytes:
        data = loads(event.data)
        if not isinstance(data, dict):
            return event.encode()
        if "error" in data:
            self.state.error = _stream_error(data)
            return b""
        was_finished = self.state.finished
        _observe(self.state, data)
        if (self.state.finished and not was_finished) or self._held:
            self._held.append(event.encode())
            return b""
        return event.encode()

    def tail(self) -> bytes:
        return b"".join(self._held)


class GeminiHubStream:
    def __init__(self, model: str, seed: str = "") -> None:
        self.state = StreamState()
        self._tr = tr.GeminiToChatStream(model=model, seed=seed)

    def feed(self, event: Event) -> list[JSON]:
        data = loads(event.data)
        if not isinstance(data, dict):
            return []
        if "error" in data:
            self.state.error = _stream_error(data)
            return []
        chunks = self._tr.feed(data)
        state = self.state
        for chunk in chunks:
            for choice in chunk["choices"]:
                state.chars += len(choice["delta"].get("content") or "")
                if choice.get("finish_reason"):
                    state.finished = True
        if state.usage is None or state.finished:
            state.usage = self._tr.usage
        return chunks

    def final_usage_chunk(self) -> JSON:
        return self._tr.final_usage_chunk()


def model_path(model: str) -> str:
    """``models/{id}`` (or ``tunedModels/{id}``), the id escaped as one path segment."""
    collection, sep, rest = model.partition("/")
    if sep and collection in ("models", "tunedModels"):
        return f"{collection}/{segment(rest)}"
    return "models/" + segment(model)


def resource_name(model: str) -> str:
    """``models/{id}`` as a request body names a model (unescaped)."""
    if model.startswith(("models/", "tunedModels/")):
        return model
    return "models/" + model


# What a listed model must support for the gateway to serve it: Google's list also
# has image, video and question-answering models (predict, generateAnswer...).
_SERVED_METHODS = frozenset({"generateContent", "embedContent"})


def _model_info(item: JSON) -> ModelInfo | None:
    name = item.get("name")
    mid = listed_id(name.removeprefix("models/")) if isinstance(name, str) else None
    methods = item.get("supportedGenerationMethods")
    if isinstance(methods, list):
        methods = tuple(m for m in methods if isinstance(m, str))
        if not _SERVED_METHODS.intersection(methods):
            return None
    else:
        methods = None
    if mid is None:
        return None
    return ModelInfo(
        mid,
        display_name=text(item.get("displayName")),
        description=text(item.get("description")),
        input_token_limit=count(item.get("inputTokenLimit")),
        output_token_limit=count(item.get("outputTokenLimit")),
        methods=methods,
    )


class GeminiAdapter(AdapterDefaults):
    wire = Wire.GOOGLE
    capabilities = frozenset({CHAT, EMBEDDINGS, COUNT_TOKENS})

    def models_request(
        self, pc: ProviderConfig, api_key: str | None, cursor: str | None
    ) -> UpstreamRequest | None:
        """GET /v1beta/models, 1000 a page (the most it allows), from ``pageToken``."""
        query = {**pc.query, "pageSize": "1000"}
        if cursor is not None:
            query["pageToken"] = cursor
        return get(join_url(pc.base_url, "/v1beta/models", query), self.headers(pc, api_key))

    def models_page(self, payload: JSON) -> ModelPage:
        # {"models": [{"name": "models/ID", "displayName", "inputTokenLimit",
        #  "supportedGenerationMethods", ...}], "nextPageToken"}; an empty page has no
        # "models" at all.
        models = payload.get("models", [])
        if not isinstance(models, list):
            raise TranslationError("the model list's 'models' is not an array")
        out = [info for m in models if isinstance(m, dict) and (info := _model_info(m))]
        token = payload.get("nextPageToken")
        return ModelPage(out, token if isinstance(token, str) and token else None)

    def count_tokens_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        """``models/M:countTokens``. ``body`` is a generateContent request: contents
        alone are counted as they are; with a system instruction, tools or generation
        config it goes whole, as ``generateContentRequest`` (which must name the model)."""
        req = {k: v for k, v in body.items() if k != "model"}
        if set(req) <= {"contents"}:
            out: JSON = {"contents": req.get("contents", [])}
        else:
            out = {"generateContentRequest": {**req, "model": resource_name(upstream_model)}}
        return self.request(pc, api_key, upstream_model, "countTokens", out)

    def count_tokens_total(self, payload: JSON) -> int | None:
        return count(payload.get("totalTokens"))

    def native_embeddings_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        method: str,
    ) -> UpstreamRequest:
        """A Gemini client's embedContent or batchEmbedContents, each request's model
        replaced by the upstream one."""
        name = resource_name(upstream_model)
        out = dict(body)
        if method == "batchEmbedContents":
            out["requests"] = [{**r, "model": name} for r in body.get("requests") or ()]
        elif "model" in out:
            out["model"] = name
        return self.request(pc, api_key, upstream_model, method, out)

    def headers(self, pc: ProviderConfig, api_key: str | None) -> dict[str, str]:
        headers = {"User-Agent": "aigw", **pc.headers}
        if api_key:
            headers[pc.auth_header or "x-goog-api-key"] = api_key
        return headers

    def request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        model: str,
        method: str,
        body: JSON,
        query: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        """POST to ``/v1beta/models/{model}:{method}``."""
        url = join_url(
            pc.base_url, f"/v1beta/{model_path(model)}:{method}", {**pc.query, **(query or {})}
        )
        return post(url, self.headers(pc, api_key), body)

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
        body = {k: v for k, v in body.items() if k != "model"}
        if stream:
            return self.request(
                pc, api_key, upstream_model, "streamGenerateContent", body, {"alt": "sse"}
            )
        return self.request(pc, api_key, upstream_model, "generateContent", body)

    def from_hub(self, hub: JSON, opts: TranslateOptions) -> Translated:
        return tr.chat_to_gemini_request(hub, opts)

    def response_usage(self, payload: JSON) -> Usage | None:
        return tr.usage_from_gemini(payload.get("usageMetadata"))

    def response_to_hub(self, payload: JSON, model: str, *, request: JSON | None = None) -> JSON:
        return tr.gemini_to_chat_response(payload, model=model, seed=conversation_seed(request))

    def native_stream(self, *, client_wants_usage: bool) -> GeminiStream:
        return GeminiStream()

    def hub_stream(self, model: str, *, request: JSON | None = None) -> GeminiHubStream:
        return GeminiHubStream(model, conversation_seed(request))

    def embeddings_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> tuple[UpstreamRequest, list[str]]:
        translated = tr.embeddings_to_gemini_request(body, upstream_model=upstream_model)
        req = self.request(pc, api_key, upstream_model, "batchEmbedContents", translated.body)
        return req, translated.warnings

    def embeddings_response(
        self, raw: bytes, payload: JSON, *, model: str, request: JSON, prompt_tokens: int
    ) -> tuple[bytes, Usage | None]:
        out = tr.gemini_to_embeddings_response(
            payload,
            model=model,
            encoding_format=request.get("encoding_format"),
            prompt_tokens=prompt_tokens,
        )
        return orjson.dumps(out), None  # Gemini reports no usage: estimated

    def error(
        self, status: int, body: bytes, provider: str, retry_after: str | None
    ) -> UpstreamFault:
        message, google_status = tr.parse_gemini_error(body)
        # Google answers a wrong key with 400 INVALID_ARGUMENT "API key not valid".
        bad_key = status in (400, 401, 403) and "API key" in message
        type_, code = openai_error_kind(status, google_status, message)
        return upstream_error(
            status,
            message,
            provider,
            type=type_,
            code=code,
            retry_after=retry_after,
            auth_failed=bad_key,
        )


ADAPTER = GeminiAdapter()
