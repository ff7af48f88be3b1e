"""A fake OpenAI API: chat completions (JSON and SSE), embeddings, responses, models.

GET /v1/models answers in the documented list format, which vLLM and Ollama's
OpenAI-compatible servers share ({"object": "list", "data": [{"id", "object":
"model", "created", "owned_by"}]}; vLLM adds ``max_model_len``). ``model_list``
sets what it lists, so the fake can stand in for a local server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import DieMidStream, Fail, FakeUpstream, Hang, Inject, Reply


def _usage(r: Reply) -> dict[str, Any]:
    u = r.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        # cache_write_tokens: openai-python's PromptTokensDetails (GPT-5.6/GPT-6 caching).
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_calls(r: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(args).decode()},
        }
        for i, (name, args) in enumerate(r.tool_calls)
    ]


# Entries as api.openai.com's GET /v1/models returns them (API reference, "List models").
OPENAI_MODELS: list[dict[str, Any]] = [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {
        "id": "text-embedding-3-small",
        "object": "model",
        "created": 1705948997,
        "owned_by": "system",
    },
]


class FakeOpenAI(FakeUpstream):
    """Speaks https://api.openai.com/v1. Mount base_url + '/v1' as the provider URL."""

    def __init__(self, model_list: list[dict[str, Any]] | None = None) -> None:
        self.model_list = OPENAI_MODELS if model_list is None else model_list
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/responses", self.responses)

    def error(self, b: Fail) -> web.Response:
        body = b.body or orjson.dumps(
            {"error": {"message": b.message, "type": "server_error", "param": None, "code": None}}
        )
        return web.Response(
            status=b.status, body=body, headers={"Content-Type": "application/json", **b.headers}
        )

    async def models(self, request: web.Request) -> web.StreamResponse:
        _, fail = await self.record_listing(request)
        if fail is not None:
            return self.error(fail)
        return web.json_response({"object": "list", "data": self.model_list})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        b = self.next_behavior(rec.body)
        if isinstance(b, Fail):
            if b.gate is not None:
                await b.gate.wait()
            return self.error(b)
        if isinstance(b, Hang):
            await self.hang(b)
            return web.Response(status=504)
        body = rec.body
        model = body.get("model", "unknown")
        created = int(time.time())
        cid = f"chatcmpl-fake{len(self.requests)}"
        # OpenAI's own request id, in every response as the API reference documents.
        reply = b if isinstance(b, Reply) else Reply()
        headers = {"x-request-id": reply.request_id or f"req_fakeoai{len(self.requests)}"}
        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        if reply.gate is not None:
            await reply.gate.wait()
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
            if reply.tool_calls:
                message = {"role": "assistant", "content": None, "tool_calls": _tool_calls(reply)}
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                        }
                    ],
                    "usage": _usage(reply),
                    "system_fingerprint": "fp_fake",
                },
                dumps=lambda o: orjson.dumps(o).decode(),
                headers=headers,
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = await self.sse_start(request, headers)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                obj["usage"] = None
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if reply.tool_calls:
            for i, tc in enumerate(_tool_calls(reply)):
                args = tc["function"]["arguments"]
                head = {
                    "index": i,
                    "id": tc["id"],
                    "type": "function",
                    "function": {"name": tc["function"]["name"], "arguments": ""},
                }
                chunks.append(chunk({"tool_calls": [head]}))
                for piece in self.words(args, 4):
                    chunks.append(
                        chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                    )
            chunks.append(chunk({}, "tool_calls"))
        else:
            chunks.extend(chunk({"content": w}) for w in self.words(reply.text))
            chunks.append(chunk({}, "stop"))
        if include_usage:
            final = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": _usage(reply),
            }
            chunks.append(b"data: " + orjson.dumps(final) + b"\n\n")
        chunks.append(b"data: [DONE]\n\n")
        for i, c in enumerate(chunks):
            if isinstance(b, DieMidStream) and i == b.after:
                self.die(request)
                return resp
            if isinstance(b, Inject) and i == b.after:
                return await self.inject(resp, b)
            await resp.write(c)
            if reply.chunk_delay and i + 1 >= reply.delay_from:
                await asyncio.sleep(reply.chunk_delay)
        await resp.write_eof()
        return resp

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        b = self.next_behavior()
        if isinstance(b, Fail):
            return self.error(b)
        inputs = rec.body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        import base64
        import struct

        data = []
        for i, _ in enumerate(items):
            vec = [0.1 * (i + 1), 0.2, 0.3]
            emb: Any = vec
            if rec.body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        n = 5 * len(items)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": rec.body.get("model"),
                "usage": {"prompt_tokens": n, "total_tokens": n},
            }
        )

    async def responses(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        b = self.next_behavior()
        if isinstance(b, Fail):
            return self.error(b)
        reply = b if isinstance(b, Reply) else Reply()
        u = reply.usage
        usage = {
            "input_tokens": u.prompt_tokens,
            "input_tokens_details": {
                "cached_tokens": u.cached_tokens,
                "cache_write_tokens": u.cache_write_tokens,
            },
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.total_tokens,
        }
        created = int(time.time())
        msg = {
            "type": "message",
            "id": "msg_fake",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
        }
        full = {
            "id": "resp_fake",
            "object": "response",
            "created_at": created,
            "status": "completed",
            "model": rec.body.get("model"),
            "output": [msg],
            "usage": usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        if not rec.body.get("stream"):
            return web.json_response(full)
        resp = await self.sse_start(request)
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "response.created",
                {"response": {**full, "status": "in_progress", "output": [], "usage": None}},
            ),
        ]
        for w in self.words(reply.text):
            events.append(
                (
                    "response.output_text.delta",
                    {"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": w},
                )
            )
        events.append(("response.completed", {"response": full}))
        for seq, (name, data) in enumerate(events):
            if isinstance(b, Inject) and seq == b.after:
                return await self.inject(resp, b)
            data = {"type": name, "sequence_number": seq, **data}
            await resp.write(f"event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n")
        await resp.write_eof()
        return resp
