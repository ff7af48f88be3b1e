"""Scaffolding shared by the fake providers.

A fake is a real aiohttp server on an ephemeral port. Tests script what the next
calls do (reply, fail with a status and body, hang, die mid-stream) and read back
every request it received, so they can check exactly what the gateway sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from aigw.server import Server
from aigw.usage import Usage


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_path: str = ""  # as sent, percent-escapes intact


@dataclass
class Reply:
    """A successful answer. ``tool_calls``: list of (name, arguments-dict)."""

    text: str = "Hello from the fake provider."
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: Usage = field(default_factory=lambda: Usage(prompt_tokens=11, completion_tokens=7))
    # Stream only: pause this long between chunks (to test idle timeouts), after the
    # first ``delay_from`` chunks.
    chunk_delay: float = 0.0
    delay_from: int = 0
    # Pause this long before answering at all (a slow first byte).
    first_delay: float = 0.0
    # A thought summary sent ahead of the answer (Gemini: a ``thought: true`` part).
    thought: str = ""
    # The provider's own request id header value (FakeOpenAI); None: its usual one.
    request_id: str | None = None
    # Hold the answer until the test sets this event (e.g. to have several calls in
    # flight at once without sleeping).
    gate: asyncio.Event | None = None


@dataclass
class Fail:
    """An error response with the provider's own error body."""

    status: int
    message: str = "upstream failure"
    headers: dict[str, str] = field(default_factory=dict)
    # Raw body; when None the fake renders ``message`` in its provider's envelope.
    body: bytes | None = None
    # Hold the failure until the test sets this event (the OpenAI fake's chat).
    gate: asyncio.Event | None = None


@dataclass
class Hang:
    """Accept the request and never answer (until the server closes)."""

    seconds: float = 3600.0


@dataclass
class DieMidStream:
    """Stream ``after`` chunks, then drop the connection without finishing."""

    after: int = 2


@dataclass
class Inject:
    """Stream ``after`` events, then send ``raw`` bytes as they are and end the stream.

    For error events in the middle of a stream, malformed chunks and the like.
    """

    raw: bytes
    after: int = 2


@dataclass
class ToolLoop:
    """An agent's round trip: ``call`` (a Reply with tool calls) until the request
    carries a tool result, then ``answer``. Decided from each request, so it can stay
    the default however many calls a client makes."""

    call: Reply
    answer: Reply


Behavior = Reply | Fail | Hang | DieMidStream | Inject | ToolLoop


def has_tool_result(body: Any) -> bool:
    """Whether a request in any of the three wire formats carries a tool's result."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if (
                item.get("role") == "tool"
                or item.get("type") == "tool_result"
                or "functionResponse" in item
            ):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class FakeUpstream:
    """Base class: subclasses add routes speaking one provider's wire format."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.strays: list[Recorded] = []  # requests to a path this fake does not serve
        # Model-list requests (GET .../models), kept apart: the gateway fetches them in
        # the background, so they must not show up as ``last`` nor eat the script.
        self.listings: list[Recorded] = []
        self.listing_fails: deque[Fail | Hang] = deque()  # the next listings' failures
        self.script: deque[Behavior] = deque()
        self.default: Behavior = Reply()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(self.app)
        self.app.router.add_route("*", "/{tail:.*}", self._stray)

    # -- for tests -------------------------------------------------------------
    def then(self, *behaviors: Behavior) -> Self:
        """Queue behaviours for the next calls; afterwards ``default`` applies."""
        self.script.extend(behaviors)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def start(self) -> Self:
        server = Server(self.app, shutdown_timeout=0.1)
        await server.setup()
        self.port = await server.listen("127.0.0.1", 0)
        self._runner = server.runner
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- for subclasses --------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def record(self, request: web.Request) -> Recorded:
        raw = await request.read()
        try:
            import orjson

            body: Any = orjson.loads(raw) if raw else None
        except ValueError:
            body = raw
        rec = Recorded(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            body,
            request.raw_path,
        )
        self.requests.append(rec)
        return rec

    async def _stray(self, request: web.Request) -> web.Response:
        rec = await self.record(request)
        self.requests.pop()
        self.strays.append(rec)
        return web.Response(status=404, text="stray request")

    async def record_listing(self, request: web.Request) -> tuple[Recorded, Fail | None]:
        """Record a model-list request; the scripted failure for it, if any (a
        scripted Hang hangs here)."""
        rec = await self.record(request)
        self.requests.pop()
        self.listings.append(rec)
        b = self.listing_fails.popleft() if self.listing_fails else None
        if isinstance(b, Hang):
            await self.hang(b)
            b = Fail(504, "deadline exceeded")
        return rec, b

    def next_behavior(self, body: Any = None) -> Behavior:
        b = self.script.popleft() if self.script else self.default
        if isinstance(b, ToolLoop):
            return b.answer if has_tool_result(body) else b.call
        return b

    @staticmethod
    async def hang(b: Hang) -> None:
        await asyncio.sleep(b.seconds)

    @staticmethod
    async def sse_start(
        request: web.Request, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **(headers or {})})
        await resp.prepare(request)
        return resp

    @staticmethod
    async def inject(resp: web.StreamResponse, b: Inject) -> web.StreamResponse:
        """Send ``b.raw`` and end the stream (see :class:`Inject`)."""
        await resp.write(b.raw)
        await resp.write_eof()
        return resp

    @staticmethod
    def die(request: web.Request) -> None:
        """Drop the connection abruptly, as a crashed upstream would."""
        transport = request.transport
        if transport is not None:
            transport.abort()

    @staticmethod
    def words(text: str, n: int = 3) -> list[str]:
        """Split ``text`` into stream deltas of about ``n`` characters."""
        return [text[i : i + n] for i in range(0, len(text), n)] or [""]
