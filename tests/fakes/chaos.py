"""Misbehaving upstreams for the hostile-input property test.

``Chaos`` wraps one of the scripted fakes (FakeOpenAI, FakeAnthropic, FakeGemini) with a
middleware. While ``mode`` is ``"ok"`` the fake answers as usual; any other mode makes
the upstream misbehave the way real ones do: echo the provider key it was sent in every
field of an error (and in ``Retry-After``), send an error event in the middle of a
stream, send malformed chunks, send JSON of the wrong shape, or hang up mid-answer.

Requests to any path the provider does not serve land in the fake's ``strays``: a model
name that steered the gateway to another path on the provider host shows up there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import FakeUpstream

MODES = (
    "ok",
    "echo_error",
    "echo_stream_error",
    "garbage_stream",
    "wrong_shape",
    "die",
)


def presented_key(request: web.Request) -> str:
    """The provider key the gateway sent, however it was sent."""
    auth = request.headers.get("Authorization", "")
    return (
        auth.removeprefix("Bearer ").strip()
        or request.headers.get("x-api-key")
        or request.headers.get("x-goog-api-key")
        or request.query.get("key")
        or "no-key-sent"
    )


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return head + b"data: " + raw + b"\n\n"


class Chaos:
    """Puts a misbehaviour switch in front of ``fake`` (before it starts)."""

    def __init__(self, fake: FakeUpstream, wire: str) -> None:
        self.fake = fake
        self.wire = wire  # "openai" | "anthropic" | "gemini"
        self.mode = "ok"
        self.status = 500
        fake.app.middlewares.append(self._middleware)

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if self.mode == "ok" or request.match_info.route.resource is None:
            return await handler(request)
        if request.match_info.get("tail") is not None:
            return await handler(request)  # a stray path: the fake records it
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        stream = (
            isinstance(body, dict) and body.get("stream") is True
        ) or "streamGenerateContent" in request.path
        key = presented_key(request)
        if self.mode == "echo_error":
            return self._error(key)
        if self.mode == "wrong_shape":
            return web.Response(
                body=orjson.dumps(
                    {"choices": {"k": key}, "content": 7, "candidates": "x", "usage": [key]}
                ),
                content_type="application/json",
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if self.mode == "die" or not stream:
            await resp.write(b'{"partial": "' + key.encode() + b'"')
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write(self._first_event())
        if self.mode == "garbage_stream":
            for chunk in (
                b"data: {not json " + key.encode() + b"\n\n",
                b"data: [1, 2, 3]\n\n",
                _sse({"choices": "nope", "type": 5, "candidates": [None], "delta": key}),
                b"event: \xff\xfe\ndata: \x00\x01\n\n",
                b": comment " + key.encode() + b"\n\n",
                b"data: " + b"9" * 5000 + b"\n\n",
            ):
                await resp.write(chunk)
        else:  # echo_stream_error
            await resp.write(self._stream_error(key))
        await resp.write_eof()
        return resp

    def _error(self, key: str) -> web.Response:
        status = self.status
        if self.wire == "anthropic":
            body: Any = {
                "type": "error",
                "error": {"type": f"{key}_error", "message": f"Invalid key {key}"},
            }
        elif self.wire == "gemini":
            body = {
                "error": {
                    "code": status,
                    "message": f"API key not valid: {key}",
                    "status": key,
                    "details": [{"reason": key}],
                }
            }
        else:
            body = {
                "error": {
                    "message": f"Incorrect API key provided: {key}",
                    "type": key,
                    "param": key,
                    "code": key,
                }
            }
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"Retry-After": key, "x-echo": key},
        )

    def _first_event(self) -> bytes:
        if self.wire == "anthropic":
            return _sse(
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_chaos",
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-chaos",
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": 3, "output_tokens": 1},
                    },
                },
                "message_start",
            )
        if self.wire == "gemini":
            return _sse(
                {
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}
                    ],
                    "modelVersion": "gemini-chaos",
                }
            )
        return _sse(
            {
                "id": "chatcmpl-chaos",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-chaos",
                "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
            }
        )

    def _stream_error(self, key: str) -> bytes:
        if self.wire == "anthropic":
            return _sse(
                {"type": "error", "error": {"type": key, "message": f"overloaded {key}"}},
                "error",
            )
        if self.wire == "gemini":
            return _sse({"error": {"code": 500, "message": f"internal {key}", "status": key}})
        # OpenAI chat streams and the Responses API each have their own error event.
        return _sse(
            {"error": {"message": f"bad key {key}", "type": key, "code": key, "param": key}}
        ) + _sse(
            {"type": "error", "code": key, "message": f"bad key {key}", "param": key},
            "error",
        )
