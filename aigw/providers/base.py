"""What every provider adapter and transport provides.

An adapter is data-in/data-out: it builds the upstream HTTP request for a call and
reads the provider's answer (JSON, SSE events, error bodies) back. Transports do
the I/O: :mod:`aigw.providers.http` for real providers, :mod:`aigw.providers.mock`
answers in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aigw.config import ProviderConfig
from aigw.errors import GatewayError, Wire
from aigw.sse import Event
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
    """Watches a stream that is passed through to a client of the same API family.

    ``feed`` returns the bytes to send on now (``b""`` to drop the event); events
    that must wait until the ledger row is committed (the end of the stream) are
    held and returned by ``tail``.
    """

    state: StreamState

    def feed(self, event: Event) -> bytes: ...

    def tail(self) -> bytes: ...


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
    ) -> UpstreamRequest: ...

    def response_usage(self, payload: JSON) -> Usage | None: ...

    def native_stream(self, *, client_wants_usage: bool) -> NativeStream: ...

    def error(
        self, status: int, body: bytes, provider: str, api_key: str | None, retry_after: str | None
    ) -> GatewayError:
        """The upstream error as the client sees it: key redacted, Retry-After kept."""
        ...
