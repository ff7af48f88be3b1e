"""What every provider adapter and transport provides, and helpers they share.

An adapter is data-in/data-out: it builds the upstream HTTP request for a call and
reads the provider's answer (JSON, SSE events, error bodies) back, natively or via
the hub format (OpenAI chat completions). Transports do the I/O:
:mod:`aigw.providers.http` for real providers, :mod:`aigw.providers.mock` in-process.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import orjson

from aigw.config import ProviderConfig
from aigw.errors import GatewayError, Wire
from aigw.formats.validate import model_problem
from aigw.sse import Event
from aigw.translate.common import Translated, TranslateOptions, TranslationError
from aigw.usage import Usage

JSON = dict[str, Any]


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(self, req: UpstreamRequest) -> UpstreamResponse: ...


@dataclass(slots=True)
class StreamState:
    """What a stream reader learned from the events it has seen so far."""

    usage: Usage | None = None
    done: bool = False  # the provider's end-of-stream event arrived
    finished: bool = False  # some choice reported a finish reason
    chars: int = 0  # text produced, for a usage estimate if the provider reports none
    error: UpstreamFault | None = None  # an error event inside the stream


class NativeStream(Protocol):
    """Watches a stream passed through to a client of the same API family.

    ``feed`` returns the bytes to send on now (``b""`` to drop the event); events that
    end the stream are held until the ledger row is committed and returned by ``tail``.
    """

    state: StreamState

    def feed(self, event: Event) -> bytes: ...

    def tail(self) -> bytes: ...


class HubStream(Protocol):
    """Turns a provider's stream events into hub (OpenAI) chunks, for translation."""

    state: StreamState

    def feed(self, event: Event) -> list[JSON]: ...

    def final_usage_chunk(self) -> JSON: ...


# What an adapter can serve, beyond chat (which every adapter serves).
CHAT = "chat"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"  # OpenAI's Responses API, passed through
COUNT_TOKENS = "count_tokens"  # an exact, free token count


@dataclass(slots=True, frozen=True)
class ModelInfo:
    """One model a provider's own models endpoint lists (what it says about it).

    Every field but ``id`` is optional: each API reports a different subset, and
    the client formats render what is known.
    """

    id: str
    display_name: str | None = None
    description: str | None = None
    created: int | None = None  # Unix seconds
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    # Gemini's supportedGenerationMethods, when the provider reports them.
    methods: tuple[str, ...] | None = None


def listed_id(value: object) -> str | None:
    """A model id from a provider's list, if it is one clients could ask for (ids
    reach listings, URLs and logs: the same rules as a client's model name)."""
    if isinstance(value, str) and model_problem(value) is None:
        return value
    return None


def count(value: object) -> int | None:
    """A non-negative integer from a provider's JSON, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def text(value: object, limit: int = 1024) -> str | None:
    """A short string from a provider's JSON (cut to ``limit``), else None."""
    return value[:limit] if isinstance(value, str) and value else None


@dataclass(slots=True, frozen=True)
class ModelPage:
    """One page of a provider's model list; ``next`` is the cursor of the next page."""

    models: list[ModelInfo]
    next: str | None = None


def data_models(payload: JSON, info: Callable[[str, JSON], ModelInfo]) -> list[ModelInfo]:
    """The entries of a ``{"data": [{"id", ...}]}`` list (OpenAI's and Anthropic's
    shape), each made a :class:`ModelInfo` by ``info``; odd entries are skipped."""
    data = payload.get("data")
    if not isinstance(data, list):
        raise TranslationError("the model list has no 'data' array")
    out: list[ModelInfo] = []
    for item in data:
        mid = listed_id(item.get("id")) if isinstance(item, dict) else None
        if mid is not None:
            out.append(info(mid, item))
    return out


class ProviderAdapter(Protocol):
    """The provider side of one API family: everything provider-specific.

    The pipeline asks ``capabilities`` before it calls an optional method
    (embeddings, responses, count_tokens); the others every adapter provides.
    """

    wire: Wire
    capabilities: frozenset[str]
    needs_key: bool  # False for an in-process provider (the mock)
    # The response header that carries the provider's own request id, or None.
    request_id_header: str | None

    def transport(self, http: Transport) -> Transport:
        """How calls reach this provider: ``http`` unless it answers in-process."""
        ...

    def models(self, catalog: list[str]) -> list[str]:
        """The model names listed until (or unless) the provider's own list arrives;
        ``catalog``: the shipped price table's models of this provider type."""
        ...

    def models_request(
        self, pc: ProviderConfig, api_key: str | None, cursor: str | None
    ) -> UpstreamRequest | None:
        """GET one page of the provider's own model list (``cursor``: from the previous
        :class:`ModelPage`); None when the provider has no models endpoint."""
        ...

    def models_page(self, payload: JSON) -> ModelPage:
        """A page of the provider's model list, read from its JSON answer. Raises
        TranslationError when the answer is not a model list."""
        ...

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
        """A chat call; ``body`` is already in this provider's format."""
        ...

    def from_hub(self, hub: JSON, opts: TranslateOptions) -> Translated:
        """A hub (OpenAI chat) request in this provider's format."""
        ...

    def response_usage(self, payload: JSON) -> Usage | None: ...

    def response_to_hub(self, payload: JSON, model: str, *, request: JSON | None = None) -> JSON:
        """The answer as a hub completion; ``request``: the hub request it answers
        (Gemini mints tool-call ids from its conversation)."""
        ...

    def native_stream(self, *, client_wants_usage: bool) -> NativeStream: ...

    def hub_stream(self, model: str, *, request: JSON | None = None) -> HubStream: ...

    def error(
        self, status: int, body: bytes, provider: str, retry_after: str | None
    ) -> UpstreamFault:
        """The upstream error as the client will see it, once redacted."""
        ...

    def embeddings_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> tuple[UpstreamRequest, list[str]]:
        """An OpenAI embeddings request (``body``) as this provider's call, and the
        warnings of its translation. Raises TranslationError."""
        ...

    def embeddings_response(
        self, raw: bytes, payload: JSON, *, model: str, request: JSON, prompt_tokens: int
    ) -> tuple[bytes, Usage | None]:
        """The answer in OpenAI's embeddings format, and its usage if the provider
        reported any. Raises TranslationError."""
        ...

    def responses_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> UpstreamRequest: ...

    def responses_stream(self) -> NativeStream: ...

    def count_tokens_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        """An exact token count. ``body`` is a chat request in this provider's format,
        the client's own (native) or translated from the hub."""
        ...

    def count_tokens_total(self, payload: JSON) -> int | None:
        """The token count in the provider's answer to :meth:`count_tokens_request`."""
        ...

    def native_embeddings_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        method: str,
    ) -> UpstreamRequest:
        """An embeddings call whose ``body`` is already in this provider's own format
        (a client of the same API family); ``method`` names the client's call
        (Gemini: ``embedContent`` or ``batchEmbedContents``)."""
        ...


class AdapterDefaults:
    """What an adapter serves unless it says otherwise: chat only, over HTTP, with a key.

    The optional methods refuse; the pipeline checks ``capabilities`` first, so they
    are reached only by a bug.
    """

    capabilities: frozenset[str] = frozenset({CHAT})
    needs_key = True
    request_id_header: str | None = None

    def transport(self, http: Transport) -> Transport:
        return http

    def models(self, catalog: list[str]) -> list[str]:
        return catalog

    def models_request(
        self, pc: ProviderConfig, api_key: str | None, cursor: str | None
    ) -> UpstreamRequest | None:
        return None

    def models_page(self, payload: JSON) -> ModelPage:
        raise NotImplementedError("models")

    def count_tokens_total(self, payload: JSON) -> int | None:
        raise NotImplementedError(COUNT_TOKENS)

    def native_embeddings_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        method: str,
    ) -> UpstreamRequest:
        raise NotImplementedError(EMBEDDINGS)

    def embeddings_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> tuple[UpstreamRequest, list[str]]:
        raise NotImplementedError(EMBEDDINGS)

    def embeddings_response(
        self, raw: bytes, payload: JSON, *, model: str, request: JSON, prompt_tokens: int
    ) -> tuple[bytes, Usage | None]:
        raise NotImplementedError(EMBEDDINGS)

    def responses_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> UpstreamRequest:
        raise NotImplementedError(RESPONSES)

    def responses_stream(self) -> NativeStream:
        raise NotImplementedError(RESPONSES)

    def count_tokens_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        client_headers: Mapping[str, str] | None = None,
    ) -> UpstreamRequest:
        raise NotImplementedError(COUNT_TOKENS)


# -- upstream text: the one redaction point ----------------------------------------

# Key-shaped strings an upstream error message may echo back (OpenAI's 401 does).
_KEYISH = re.compile(r"\b(?:sk-|sk_|gw-|AIza)[A-Za-z0-9*._-]{8,}")
REDACTED = "[redacted]"


# A provider's key, or all the keys of its pool (``Provider.secrets``).
Secrets = str | Sequence[str] | None


def _each(keys: Secrets) -> Sequence[str]:
    if keys is None:
        return ()
    return (keys,) if isinstance(keys, str) else keys


def redact(text: str, keys: Secrets) -> str:
    """Remove the provider's keys, and anything shaped like a key, from upstream text."""
    for key in _each(keys):
        if key and key in text:
            text = text.replace(key, REDACTED)
    return _KEYISH.sub(REDACTED, text)


def redact_bytes(data: bytes, keys: Secrets) -> bytes:
    """Remove the provider's keys from upstream bytes passed through as they came."""
    for api_key in _each(keys):
        if api_key:
            key = api_key.encode()
            if key in data:
                data = data.replace(key, REDACTED.encode())
    return data


# Retry-After is delay-seconds or an HTTP date (RFC 9110 10.2.3); anything else from
# upstream is dropped rather than copied into the client's headers.
_RETRY_SECONDS = re.compile(r"[0-9]{1,10}")
_HTTP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def valid_retry_after(value: str | None) -> str | None:
    """``value`` if it is a well-formed Retry-After, else None."""
    if value is None:
        return None
    value = value.strip()
    if _RETRY_SECONDS.fullmatch(value) or _HTTP_DATE.fullmatch(value):
        return value
    return None


@dataclass(slots=True, frozen=True)
class UpstreamFault:
    """An error the provider reported, before redaction.

    Every text field may echo a provider key. Adapters describe upstream errors with
    this type and never build a :class:`GatewayError` from upstream text themselves:
    :meth:`to_error` is the only way to one, and it redacts every field with every key
    of the provider's pool (pass ``provider.secrets``).
    """

    status: int
    message: str
    type: str = "upstream_error"
    code: str | None = None
    param: str | None = None
    retry_after: str | None = None

    def to_error(self, api_key: Secrets) -> GatewayError:
        retry_after = valid_retry_after(self.retry_after)

        def clean(text: str | None) -> str | None:
            return None if text is None else redact(text, api_key)

        return GatewayError(
            self.status,
            redact(self.message, api_key),
            type=redact(self.type, api_key),
            code=clean(self.code),
            param=clean(self.param),
            headers={"Retry-After": retry_after} if retry_after else {},
        )


def upstream_error(
    status: int,
    message: str,
    provider: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    retry_after: str | None = None,
    auth_failed: bool = False,
) -> UpstreamFault:
    """An upstream error response as the client should see it (once redacted).

    401/403 from the provider mean aigw's own credentials are wrong: the client can
    do nothing about that, so it becomes a 502 instead of passing as "your key is bad".
    """
    if auth_failed or status in (401, 403):
        return UpstreamFault(
            502,
            f"Upstream provider '{provider}' rejected the gateway's credentials "
            f"({status}): {message}",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    return UpstreamFault(
        status,
        f"Upstream provider '{provider}' returned {status}: {message}",
        type=type or ("server_error" if status >= 500 else "invalid_request_error"),
        code=code,
        param=param,
        retry_after=retry_after,
    )


def stream_error(message: object, *, status: int = 502) -> UpstreamFault:
    """An error event inside a provider's stream."""
    return UpstreamFault(status, f"Upstream stream error: {message}")


# -- upstream URLs -------------------------------------------------------------------


def segment(text: str) -> str:
    """``text`` as one URL path segment: every reserved character escaped.

    Dot segments survive escaping ("." is unreserved) and the HTTP client would
    normalise them away, so they are refused.
    """
    quoted = quote(text, safe="")
    if quoted in ("", ".", ".."):
        raise GatewayError(
            400, "Invalid model name for this provider.", code="invalid_model", param="model"
        )
    return quoted


# What a path built from constants and segment() can contain: no "?", "#", "\\",
# spaces or controls, and (checked separately) no dot segments.
_PATH = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")


def join_url(base: str, path: str, query: Mapping[str, str] | None = None) -> str:
    """``base`` + ``path`` (without doubling a version segment both contain) + query.

    ``path`` is a constant, with any client-chosen part escaped by :func:`segment`.
    """
    if not _PATH.fullmatch(path) or any(s in (".", "..") for s in path.split("/")):
        raise GatewayError(
            400, "Invalid model name for this provider.", code="invalid_model", param="model"
        )
    for version in ("/v1beta", "/v1"):
        if path.startswith(version + "/") and base.endswith(version):
            path = path[len(version) :]
            break
    url = base + path
    return url + "?" + urlencode(query) if query else url


def get(url: str, headers: dict[str, str]) -> UpstreamRequest:
    return UpstreamRequest("GET", url, {"Accept": "application/json", **headers}, b"")


def post(url: str, headers: dict[str, str], body: JSON) -> UpstreamRequest:
    return UpstreamRequest(
        "POST", url, {"Content-Type": "application/json", **headers}, orjson.dumps(body)
    )


def loads(data: bytes) -> Any:
    """Parse an event's JSON data; None when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
