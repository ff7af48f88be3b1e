"""What every provider adapter and transport provides, and helpers they share.

An adapter is data-in/data-out: it builds the upstream HTTP request for a call and
reads the provider's answer (JSON, SSE events, error bodies) back, natively or via
the hub format (OpenAI chat completions). Transports do the I/O:
:mod:`aigw.providers.http` for real providers, :mod:`aigw.providers.mock` in-process.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from aigw.config import ProviderConfig
from aigw.errors import GatewayError, Wire
from aigw.sse import Event
from aigw.translate.common import Translated, TranslateOptions
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
    error: GatewayError | None = None  # an error event inside the stream


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


class ProviderAdapter(Protocol):
    """The provider side of one API family."""

    wire: Wire

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

    def response_to_hub(self, payload: JSON, model: str) -> JSON: ...

    def native_stream(self, *, client_wants_usage: bool) -> NativeStream: ...

    def hub_stream(self, model: str) -> HubStream: ...

    def error(
        self, status: int, body: bytes, provider: str, api_key: str | None, retry_after: str | None
    ) -> GatewayError:
        """The upstream error as the client sees it: key redacted, Retry-After kept."""
        ...


# -- helpers -----------------------------------------------------------------------

# Key-shaped strings an upstream error message may echo back (OpenAI's 401 does).
_KEYISH = re.compile(r"\b(?:sk-|sk_|gw-|AIza)[A-Za-z0-9*._-]{8,}")


def redact(message: str, api_key: str | None) -> str:
    """Remove the provider key, and anything shaped like a key, from upstream text."""
    if api_key:
        message = message.replace(api_key, "[redacted]")
    return _KEYISH.sub("[redacted]", message)


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
) -> GatewayError:
    """An upstream error as the client should see it.

    401/403 from the provider mean aigw's own credentials are wrong: the client can
    do nothing about that, so it becomes a 502 instead of passing as "your key is bad".
    """
    if auth_failed or status in (401, 403):
        return GatewayError(
            502,
            f"Upstream provider '{provider}' rejected the gateway's credentials "
            f"({status}): {message}",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    return GatewayError(
        status,
        f"Upstream provider '{provider}' returned {status}: {message}",
        type=type or ("server_error" if status >= 500 else "invalid_request_error"),
        code=code,
        param=param,
        headers={"Retry-After": retry_after} if retry_after else {},
    )


def join_url(base: str, path: str, query: Mapping[str, str] | None = None) -> str:
    """``base`` + ``path`` (without doubling a version segment both contain) + query."""
    for version in ("/v1beta", "/v1"):
        if path.startswith(version + "/") and base.endswith(version):
            path = path[len(version) :]
            break
    url = base + path
    return url + "?" + urlencode(query) if query else url


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
