"""A minimal, fast fake upstream for the benchmark: OpenAI, Anthropic and Gemini on one port.

- ``POST /v1/chat/completions`` (OpenAI) answers a fixed chat completion: JSON, or for
  ``"stream": true`` an SSE stream of 10 small chunks (+ a usage chunk when
  ``stream_options.include_usage`` is set) and ``data: [DONE]``.
- ``POST /v1/messages`` (Anthropic Messages) answers a fixed message: JSON, or for
  ``"stream": true`` the real event sequence: ``message_start``, ``content_block_start``,
  ``ping``, 9 ``content_block_delta``, ``content_block_stop``, ``message_delta`` (stop
  reason and output usage), ``message_stop``.
- ``POST /v1beta/models/{model}:generateContent`` (Gemini) answers a fixed
  ``GenerateContentResponse``; ``:streamGenerateContent?alt=sse`` sends 9 chunks framed
  as Google frames them (``data: {json}\\r\\n\\r\\n``, no terminator, the stream ends at
  EOF), each with the running ``usageMetadata`` as Google sends it, the last with
  ``finishReason``.

All three carry the same text ("Hi! How can I help you today?") and the same token
counts (9 in, 9 out). Every byte is built once at import; a request costs at most one
small JSON parse (to see ``stream``) and the writes, one write per event as a real
upstream sends them. No auth checks: the gateway's headers are not what is measured.

Run: ``python -m benchmarks.upstream --port 9001``.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from aiohttp import web

from benchmarks.common import healthz, pin, run_loop, serve_forever

WORDS = ["Hi", "!", " How", " can", " I", " help", " you", " today", "?", ""]
TEXT = "".join(WORDS)
PIECES = [w for w in WORDS if w]  # the 9 non-empty pieces, for Anthropic and Gemini
PROMPT_TOKENS = 9
COMPLETION_TOKENS = 9
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

# -- OpenAI chat completions ------------------------------------------------------------

USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
_BASE = {"id": "chatcmpl-bench", "created": 1764000000, "model": "gpt-5.4-mini"}

COMPLETION = orjson.dumps(
    {
        **_BASE,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "system_fingerprint": "fp_bench",
    }
)


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunks(include_usage: bool) -> list[bytes]:
    out = []
    for i, word in enumerate(WORDS):
        delta: dict[str, Any] = {"content": word}
        if i == 0:
            delta["role"] = "assistant"
        last = i == len(WORDS) - 1
        obj: dict[str, Any] = {
            **_BASE,
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {} if last else delta,
                    "logprobs": None,
                    "finish_reason": "stop" if last else None,
                }
            ],
        }
        if include_usage:
            obj["usage"] = None
        out.append(_event(obj))
    if include_usage:
        out.append(
            _event({**_BASE, "object": "chat.completion.chunk", "choices": [], "usage": USAGE})
        )
    out.append(b"data: [DONE]\n\n")
    return out


STREAM = {True: _chunks(True), False: _chunks(False)}


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=COMPLETION, content_type="application/json")
    opts = body.get("stream_options")
    include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    return await _stream(request, STREAM[include_usage], SSE_HEADERS)


# -- Anthropic Messages -----------------------------------------------------------------

ANTHROPIC_USAGE = {
    "input_tokens": PROMPT_TOKENS,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": COMPLETION_TOKENS,
    "service_tier": "standard",
}
_MESSAGE: dict[str, Any] = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": ANTHROPIC_USAGE,
}
MESSAGE = orjson.dumps(_MESSAGE)
ANTHROPIC_HEADERS = {"Content-Type": "application/json", "request-id": "req_bench"}


def _anthropic_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _anthropic_stream() -> list[bytes]:
    # The real stream announces the input usage first and the cumulative output at the end.
    start = {
        **_MESSAGE,
        "content": [],
        "stop_reason": None,
        "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in PIECES
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [_anthropic_event(name, data) for name, data in events]


ANTHROPIC_STREAM = _anthropic_stream()
ANTHROPIC_SSE_HEADERS = {**SSE_HEADERS, "request-id": "req_bench"}


async def messages(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=MESSAGE, headers=ANTHROPIC_HEADERS)
    return await _stream(request, ANTHROPIC_STREAM, ANTHROPIC_SSE_HEADERS)


# -- Gemini generateContent -------------------------------------------------------------


def _gemini_usage(done: int) -> dict[str, Any]:
    return {
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": done,
        "totalTokenCount": PROMPT_TOKENS + done,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}],
    }


def _gemini_response(text: str, done: int, finish: bool) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = "STOP"
    return {
        "candidates": [cand],
        "usageMetadata": _gemini_usage(done),
        "modelVersion": "gemini-2.5-flash",
        "responseId": "bench-response-id",
    }


GENERATE = orjson.dumps(_gemini_response(TEXT, COMPLETION_TOKENS, True))
GEMINI_STREAM = [
    b"data: " + orjson.dumps(_gemini_response(piece, i + 1, i == len(PIECES) - 1)) + b"\r\n\r\n"
    for i, piece in enumerate(PIECES)
]
GEMINI_HEADERS = {"Content-Type": "application/json; charset=UTF-8"}
GEMINI_SSE_HEADERS = {"Content-Type": "text/event-stream"}


async def generate(request: web.Request) -> web.StreamResponse:
    await request.read()  # the method is in the path; the body only needs draining
    _, _, method = request.match_info["target"].rpartition(":")
    if method == "generateContent":
        return web.Response(body=GENERATE, headers=GEMINI_HEADERS)
    if method == "streamGenerateContent" and request.query.get("alt") == "sse":
        return await _stream(request, GEMINI_STREAM, GEMINI_SSE_HEADERS)
    return web.Response(
        status=404,
        body=b'{"error":{"code":404,"message":"not in the benchmark","status":"NOT_FOUND"}}',
        headers=GEMINI_HEADERS,
    )


# -- app --------------------------------------------------------------------------------


async def _stream(
    request: web.Request, events: list[bytes], headers: dict[str, str]
) -> web.StreamResponse:
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    for event in events:
        await resp.write(event)  # one write per event, as a real upstream sends them
    await resp.write_eof()
    return resp


def create_app() -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    # aiohttp cannot route on "model:method"; take the whole last segment.
    app.router.add_post("/v1beta/models/{target}", generate)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cpus", help="pin to these CPUs, e.g. 1 or 0,1")
    args = ap.parse_args()
    pin(args.cpus)
    run_loop(serve_forever(create_app(), args.host, args.port))


if __name__ == "__main__":
    main()
