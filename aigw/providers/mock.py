"""The built-in mock provider: answers in-process in OpenAI's wire format.

No keys, no network: for `aigw demo`, for trying a config, and for load tests of
the gateway itself. It echoes the last user message. A model named
``error-NNN`` answers with HTTP status NNN (e.g. ``mock/error-429``), so apps can
exercise their error handling through the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from aigw.config import ProviderConfig
from aigw.providers.base import (
    CHAT,
    EMBEDDINGS,
    JSON,
    RESPONSES,
    Transport,
    UpstreamRequest,
    UpstreamResponse,
)
from aigw.providers.openai import OpenAIAdapter
from aigw.sse import DONE
from aigw.tokens import chat_prompt_tokens, text_tokens

MODELS = ("echo", "error-429", "error-500")


def _reply_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
            if isinstance(content, str) and content.strip():
                return f"Mock answer to: {content.strip()[:200]}"
    return "Mock answer."


def _embeddings(body: dict[str, Any], model: str) -> MockResponse:
    """Deterministic 8-dimensional vectors derived from each input's hash."""
    items = body.get("input")
    items = items if isinstance(items, list) else [items]
    data = []
    for i, item in enumerate(items):
        digest = hashlib.sha256(str(item).encode()).digest()
        vector = [b / 255 for b in digest[:8]]
        value: Any = vector
        if body.get("encoding_format") == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(text_tokens(str(x)) for x in items)
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return MockResponse(200, orjson.dumps(payload))


class MockResponse:
    def __init__(
        self,
        status: int,
        body: bytes = b"",
        parts: list[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = headers or {"Content-Type": "application/json"}
        self._body = body
        self._parts = parts or []

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part

    def close(self) -> None:
        pass


class MockTransport:
    async def send(self, req: UpstreamRequest) -> UpstreamResponse:
        body = orjson.loads(req.body)
        model = str(body.get("model", "echo"))
        if req.url.endswith("/embeddings"):
            return _embeddings(body, model)
        if model.startswith("error-") and model[6:].isascii() and model[6:].isdigit():
            status = int(model[6:])
            err = {
                "error": {
                    "message": f"mock error {status} (you asked for model {model})",
                    "type": "server_error" if status >= 500 else "requests",
                    "param": None,
                    "code": None,
                }
            }
            headers = {"Content-Type": "application/json"}
            if status == 429:
                headers["Retry-After"] = "1"
            return MockResponse(status, orjson.dumps(err), headers=headers)
        text = _reply_text(body)
        usage = {
            "prompt_tokens": chat_prompt_tokens(body),
            "completion_tokens": text_tokens(text),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        created = int(time.time())
        rid = "chatcmpl-mock" + str(created)
        if not body.get("stream"):
            payload = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage,
            }
            return MockResponse(200, orjson.dumps(payload))
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        words = text.split(" ")
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        parts = [
            b"data: "
            + orjson.dumps({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
            + b"\n\n"
            for d in deltas
        ]
        parts.append(
            b"data: "
            + orjson.dumps(
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            )
            + b"\n\n"
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            parts.append(
                b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            )
        parts.append(DONE)
        return MockResponse(200, parts=parts, headers={"Content-Type": "text/event-stream"})


class MockAdapter(OpenAIAdapter):
    """OpenAI's wire format, answered in-process: no key, no network."""

    capabilities = frozenset({CHAT, EMBEDDINGS})
    needs_key = False

    def transport(self, http: Transport) -> Transport:
        return MockTransport()

    def models(self, catalog: list[str]) -> list[str]:
        return list(MODELS)

    def models_request(
        self, pc: ProviderConfig, api_key: str | None, cursor: str | None
    ) -> UpstreamRequest | None:
        return None  # its models are built in: nothing to fetch

    def responses_request(
        self, pc: ProviderConfig, api_key: str | None, body: JSON, *, upstream_model: str
    ) -> UpstreamRequest:
        raise NotImplementedError(RESPONSES)  # the mock answers chat and embeddings only


ADAPTER = MockAdapter()
