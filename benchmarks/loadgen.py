"""The load generator: N workers over one pooled aiohttp session, closed loop.

Each worker sends a request, reads the whole answer (for a stream: up to the last
byte), and sends the next. After ``--warmup`` seconds the measurement window of
``--duration`` seconds opens; a request counts when it *completes* inside it.
The result is one JSON object on stdout (see :func:`run`).

``--client`` picks the API the requests speak (see :data:`CLIENTS`): OpenAI chat
completions, Anthropic Messages or Gemini generateContent, each with its own URL,
key header, body and end-of-stream check.

It runs in its own process (started by `benchmarks.run` once per measurement), so
it never shares an event loop or the GIL with the servers it measures. Per request
it does only the send, one read and a check of the last bytes: no JSON parsing.

Run alone: ``python -m benchmarks.loadgen --base-url http://127.0.0.1:8787 --key KEY
--client anthropic --model anthropic/claude-sonnet-4-5 --stream``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.common import pin, run_loop

MODEL = "openai/gpt-5.4-mini"
PROMPT = "Say hi"
MAX_TOKENS = 16


def _last_event(data: bytes) -> bytes:
    """The last SSE event of a stream (its blocks end with a blank line, LF or CRLF)."""
    tail = data[-2000:].rstrip().replace(b"\r\n", b"\n")
    return tail.rpartition(b"\n\n")[2]


def _openai_done(data: bytes) -> bool:
    return data.rstrip().endswith(b"data: [DONE]")


def _anthropic_done(data: bytes) -> bool:
    return b"message_stop" in _last_event(data)


def _gemini_done(data: bytes) -> bool:
    # Google sends no end marker: the stream ends at EOF, after the chunk that carries
    # the finish reason (an error event carries none).
    return b'"finishReason"' in _last_event(data)


@dataclass(frozen=True)
class Client:
    """How one client API sends a request and how its stream ends."""

    name: str
    path: Callable[[str, bool], str]  # (model, stream) -> URL path and query
    body: Callable[[str, bool], dict[str, Any]]  # (model, stream) -> JSON body
    key_header: Callable[[str], tuple[str, str]]  # key -> (header, value)
    headers: dict[str, str]
    stream_done: Callable[[bytes], bool]
    end_marker: str  # what a complete stream ends with, for the error message


def _openai_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        # Ask for usage so the upstream sends the same bytes whoever forwards the call
        # (aigw always asks the upstream for usage; a bare proxy forwards the body as is).
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _anthropic_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream"] = True
    return body


def _gemini_body(model: str, stream: bool) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": {"maxOutputTokens": MAX_TOKENS},
    }


def _gemini_path(model: str, stream: bool) -> str:
    if stream:
        return f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    return f"/v1beta/models/{model}:generateContent"


CLIENTS = {
    "openai": Client(
        "openai",
        lambda model, stream: "/v1/chat/completions",
        _openai_body,
        lambda key: ("Authorization", "Bearer " + key),
        {},
        _openai_done,
        "data: [DONE]",
    ),
    "anthropic": Client(
        "anthropic",
        lambda model, stream: "/v1/messages",
        _anthropic_body,
        lambda key: ("x-api-key", key),  # what the Anthropic SDK sends
        {"anthropic-version": "2023-06-01"},
        _anthropic_done,
        "message_stop",
    ),
    "gemini": Client(
        "gemini",
        _gemini_path,
        _gemini_body,
        lambda key: ("x-goog-api-key", key),  # what google-genai sends
        {},
        _gemini_done,
        "a chunk with finishReason",
    ),
}


def request_body(stream: bool, client: str = "openai", model: str = MODEL) -> bytes:
    return orjson.dumps(CLIENTS[client].body(model, stream))


def proc_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # Fields after the ")" that ends the command name; utime, stime are fields 14, 15.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def run(
    base_url: str,
    *,
    client: str = "openai",
    model: str = MODEL,
    concurrency: int,
    stream: bool,
    warmup: float,
    duration: float,
    key: str | None,
    watch_pids: dict[str, int],
    request_timeout: float,
) -> dict[str, Any]:
    api = CLIENTS[client]
    url = base_url.rstrip("/") + api.path(model, stream)
    body = request_body(stream, client, model)
    headers = {"Content-Type": "application/json", **api.headers}
    if key:
        name, value = api.key_header(key)
        headers[name] = value
    stream_done = api.stream_done
    stream_error = "stream without " + api.end_marker

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    total_ok = 0  # every 200 answer, warm-up included (to check the ledger)
    loop = asyncio.get_running_loop()
    start = loop.time()
    t_open = start + warmup
    t_close = t_open + duration
    perf = time.perf_counter

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal total_ok
        while loop.time() < t_close:
            t0 = perf()
            error: str | None = None
            detail = ""
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        error, detail = f"HTTP {resp.status}", data[:300].decode(errors="replace")
                    elif stream and not stream_done(data):
                        error, detail = stream_error, data[-300:].decode(errors="replace")
                    else:
                        total_ok += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error, detail = type(exc).__name__, str(exc)[:300]
            t1 = perf()
            now = loop.time()
            if t_open <= now <= t_close:
                if error is None:
                    latencies.append(t1 - t0)
                else:
                    errors[error] += 1
                    samples.setdefault(error, detail)
            elif error is not None and now < t_open:
                errors["warm-up: " + error] += 1
                samples.setdefault("warm-up: " + error, detail)

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=request_timeout)
    ) as session:
        workers = [asyncio.ensure_future(worker(session)) for _ in range(concurrency)]
        # Sample the servers' CPU clocks at the edges of the window.
        await asyncio.sleep(max(0.0, t_open - loop.time()))
        cpu0 = {name: proc_cpu_seconds(pid) for name, pid in watch_pids.items()}
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(max(0.0, t_close - loop.time()))
        cpu1 = {name: proc_cpu_seconds(pid) for name, pid in watch_pids.items()}
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*workers)

    cpu: dict[str, float | None] = {}
    for name in watch_pids:
        a, b = cpu0[name], cpu1[name]
        cpu[name] = None if a is None or b is None else b - a
    cpu["loadgen"] = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    latencies_ms = sorted(x * 1000 for x in latencies)
    return {
        "url": url,
        "client": client,
        "model": model,
        "concurrency": concurrency,
        "stream": stream,
        "duration_s": duration,
        "requests": len(latencies_ms),
        "rps": len(latencies_ms) / duration,
        "p50_ms": percentile(latencies_ms, 50),
        "p90_ms": percentile(latencies_ms, 90),
        "p99_ms": percentile(latencies_ms, 99),
        "mean_ms": sum(latencies_ms) / len(latencies_ms) if latencies_ms else float("nan"),
        "errors": sum(n for e, n in errors.items() if not e.startswith("warm-up")),
        "error_kinds": dict(errors),
        "error_samples": samples,
        "total_ok": total_ok,
        "cpu_s": cpu,
        "latencies_ms": latencies_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Closed-loop load generator (prints JSON).")
    ap.add_argument("--base-url", required=True, help="the server's root, e.g. http://host:port")
    ap.add_argument("--client", choices=sorted(CLIENTS), default="openai", help="API to speak")
    ap.add_argument("--model", default=MODEL, help="model name (in the body or the URL)")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument(
        "--key", help="gateway key, sent as the client's key header (Bearer, x-api-key...)"
    )
    ap.add_argument(
        "--watch", action="append", default=[], metavar="NAME=PID", help="report CPU of PID"
    )
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    ap.add_argument("--cpus", help="pin to these CPUs, e.g. 1 or 0,1")
    args = ap.parse_args()
    pin(args.cpus)
    watch = {name: int(pid) for name, _, pid in (w.partition("=") for w in args.watch)}
    result: dict[str, Any] = {}

    async def go() -> None:
        result.update(
            await run(
                args.base_url,
                client=args.client,
                model=args.model,
                concurrency=args.concurrency,
                stream=args.stream,
                warmup=args.warmup,
                duration=args.duration,
                key=args.key,
                watch_pids=watch,
                request_timeout=args.timeout,
            )
        )

    run_loop(go())
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
