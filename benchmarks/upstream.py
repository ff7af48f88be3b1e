"""A minimal, fast fake OpenAI upstream for the benchmark.

POST /v1/chat/completions answers a fixed chat completion: JSON, or for
``"stream": true`` an SSE stream of 10 small chunks (+ a usage chunk when
``stream_options.include_usage`` is set) and ``data: [DONE]``. Every byte is built
once at import; a request costs one small JSON parse and the writes.

Run: ``python -m benchmarks.upstream --port 9001``.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from aiohttp import web

from benchmarks.common import healthz, pin, run_loop, serve_forever

WORDS = ["Hi", "!", " How", " can", " I", " help", " you", " today", "?", ""]
USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 9,
    "total_tokens": 18,
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
                "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None},
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
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=COMPLETION, content_type="application/json")
    opts = body.get("stream_options")
    include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    for chunk in STREAM[include_usage]:
        await resp.write(chunk)  # one write per event, as a real upstream sends them
    await resp.write_eof()
    return resp


def create_app() -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/chat/completions", chat)
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
