"""A fake Anthropic API: ``/v1/messages`` (JSON and SSE) and ``/v1/messages/count_tokens``.

The provider base URL is ``fake.base_url`` (no ``/v1``): clients append ``/v1/messages``.
Requests need an ``anthropic-version`` header (400 otherwise) and a key, as ``x-api-key``
or as the ``Authorization: Bearer`` recent SDKs send (401 ``authentication_error`` when
neither is there).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import DieMidStream, Fail, FakeUpstream, Hang, Inject, Reply

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _usage(r: Reply) -> dict[str, Any]:
    """Anthropic counts input without cache reads and writes; the fake's Usage includes them."""
    u = r.usage
    return {
        "input_tokens": max(0, u.prompt_tokens - u.cached_tokens - u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        # The TTL split, as recorded in anthropic-sdk-python
        # tests/fixtures/fable-fallback/stream-b-fallback.sse.
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_tokens - u.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
        "output_tokens": u.completion_tokens,
        "service_tier": "standard",
    }


_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def _tool_id_error(messages: Any) -> str | None:
    """What the real API says about tool ids, in its words (recorded in public reports:
    anthropics/claude-code#20700 "messages.5.content.1: tool_use ids must be unique",
    anomalyco/opencode#1279 "messages.1.content.1.tool_use.id: String should match
    pattern '^[a-zA-Z0-9_-]+$'"), or None."""
    seen: set[str] = set()
    previous: set[str] = set()  # tool_use ids of the previous (assistant) turn
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        content = msg.get("content") if isinstance(msg, dict) else None
        blocks = content if isinstance(content, list) else []
        current: set[str] = set()
        for j, b in enumerate(blocks):
            if not isinstance(b, dict):
                continue
            if b.get("type") == "tool_use":
                bid = str(b.get("id"))
                if not _TOOL_ID.match(bid):
                    return (
                        f"messages.{i}.content.{j}.tool_use.id: String should match "
                        "pattern '^[a-zA-Z0-9_-]+$'"
                    )
                if bid in seen:
                    return f"messages.{i}.content.{j}: `tool_use` ids must be unique"
                seen.add(bid)
                current.add(bid)
            elif b.get("type") == "tool_result":
                tid = str(b.get("tool_use_id"))
                if not _TOOL_ID.match(tid):
                    return (
                        f"messages.{i}.content.{j}.tool_result.tool_use_id: String should "
                        "match pattern '^[a-zA-Z0-9_-]+$'"
                    )
                if tid not in previous:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {tid}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
        previous = current
    return None


def _content(r: Reply, n: int) -> list[dict[str, Any]]:
    # Extended thinking comes first, signed (the signature is opaque to clients).
    head = (
        [{"type": "thinking", "thinking": r.thought, "signature": "c2lnbmVk"}] if r.thought else []
    )
    if r.tool_calls:
        # Unique per answer (n: the request number), as the real API's toolu_01... are.
        return head + [
            {"type": "tool_use", "id": f"toolu_fake{n}_{i}", "name": name, "input": args}
            for i, (name, args) in enumerate(r.tool_calls)
        ]
    return [*head, {"type": "text", "text": r.text}]


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _count(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    chars = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return max(1, chars // 4)


# GET /v1/models entries in the documented shape (API reference, "List Models":
# {"type": "model", "id", "display_name", "created_at"}), newest first as the API lists.
ANTHROPIC_MODELS: list[dict[str, Any]] = [
    {
        "type": "model",
        "id": "claude-opus-4-6",
        "display_name": "Claude Opus 4.6",
        "created_at": "2026-02-04T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "created_at": "2026-02-17T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-haiku-4-5-20251001",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-15T00:00:00Z",
    },
]


class FakeAnthropic(FakeUpstream):
    """Speaks https://api.anthropic.com. Mount ``base_url`` as the provider URL."""

    def __init__(self, model_list: list[dict[str, Any]] | None = None) -> None:
        self.model_list = ANTHROPIC_MODELS if model_list is None else model_list
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    def error(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> web.Response:
        payload = body or orjson.dumps(
            {
                "type": "error",
                "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
                "request_id": f"req_fake{len(self.requests)}",
            }
        )
        return web.Response(
            status=status,
            body=payload,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def check_headers(self, request: web.Request) -> web.Response | None:
        # The API takes the key as x-api-key; recent official SDKs send it as a Bearer token.
        bearer = request.headers.get("authorization", "").startswith("Bearer ")
        if not request.headers.get("x-api-key") and not bearer:
            return self.error(401, "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        return None

    async def models(self, request: web.Request) -> web.StreamResponse:
        """Paged as the API pages: ``limit`` (default 20, 1 to 1000) after ``after_id``."""
        rec, fail = await self.record_listing(request)
        if fail is not None:
            return self.error(fail.status, fail.message, fail.headers, fail.body)
        bad = self.check_headers(request)
        if bad is not None:
            return bad
        try:
            limit = int(rec.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return self.error(400, "limit: Input should be between 1 and 1000")
        ids = [m["id"] for m in self.model_list]
        after = rec.query.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        page = self.model_list[start : start + limit]
        return web.json_response(
            {
                "data": page,
                "has_more": start + limit < len(ids),
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        bad = self.check_headers(request)
        if bad is not None:
            return bad
        # Counting consumes a scripted Fail only, so queued replies stay for messages.
        if self.script and isinstance(self.script[0], Fail):
            b = self.script.popleft()
            assert isinstance(b, Fail)
            return self.error(b.status, b.message, b.headers, b.body)
        body = rec.body if isinstance(rec.body, dict) else {}
        if "max_tokens" in body:
            # As the real endpoint refuses it (seen by Wei-Shaw/sub2api#4913).
            return self.error(400, "max_tokens: Extra inputs are not permitted")
        n = _count([body.get("system"), body.get("messages"), body.get("tools")])
        return web.json_response({"input_tokens": n})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        bad = self.check_headers(request)
        if bad is not None:
            return bad
        body = rec.body if isinstance(rec.body, dict) else {}
        bad_ids = _tool_id_error(body.get("messages"))
        if bad_ids is not None:
            return self.error(400, bad_ids)
        b = self.next_behavior(rec.body)
        if isinstance(b, Fail):
            return self.error(b.status, b.message, b.headers, b.body)
        if isinstance(b, Hang):
            await self.hang(b)
            return web.Response(status=504)
        reply = b if isinstance(b, Reply) else Reply()
        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        if reply.gate is not None:
            await reply.gate.wait()
        msg_id = f"msg_fake{len(self.requests)}"
        headers = {"request-id": f"req_fake{len(self.requests)}"}
        usage = _usage(reply)
        stop_reason = "tool_use" if reply.tool_calls else "end_turn"
        message = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "unknown"),
            "content": _content(reply, len(self.requests)),
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return web.json_response(
                message, headers=headers, dumps=lambda o: orjson.dumps(o).decode()
            )

        # The real stream announces input usage first and the cumulative output at the end.
        start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": start_usage,
                    },
                },
            ),
        ]
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": w} for w in self.words(block["text"])]
            elif block["type"] == "thinking":
                # As the API streams it: the text in deltas, the signature last.
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    *(
                        {"type": "thinking_delta", "thinking": w}
                        for w in self.words(block["thinking"], 8)
                    ),
                    {"type": "signature_delta", "signature": block["signature"]},
                ]
            else:
                start = {**block, "input": {}}
                args = orjson.dumps(block["input"]).decode()
                deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                    {"type": "input_json_delta", "partial_json": p} for p in self.words(args, 4)
                ]
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            events.extend(
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                for d in deltas
            )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))

        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        await resp.prepare(request)
        for i, (name, data) in enumerate(events):
            if isinstance(b, DieMidStream) and i == b.after:
                self.die(request)
                return resp
            if isinstance(b, Inject) and i == b.after:
                return await self.inject(resp, b)
            await resp.write(_sse(name, data))
            if reply.chunk_delay and i + 1 >= reply.delay_from:
                await asyncio.sleep(reply.chunk_delay)
        await resp.write_eof()
        return resp
