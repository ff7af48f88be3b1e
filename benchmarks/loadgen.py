"""The load generator: N workers over one pooled aiohttp session, closed loop.

Each worker sends a request, reads the whole answer (for a stream: up to the last
byte), and sends the next. After ``--warmup`` seconds the measurement window of
``--duration`` seconds opens; a request counts when it *completes* inside it.
The result is one JSON object on stdout (see :func:`run`).

It runs in its own process (started by `benchmarks.run` once per measurement), so
it never shares an event loop or the GIL with the servers it measures. Per request
it does only the send, one read and a suffix check: no JSON parsing.

Run alone: ``python -m benchmarks.loadgen --url http://127.0.0.1:8787/v1/chat/completions``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.common import pin, run_loop

MODEL = "openai/gpt-5.4-mini"


def request_body(stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 16,
    }
    if stream:
        # Ask for usage so the upstream sends the same bytes whoever forwards the call
        # (aigw always asks the upstream for usage; a bare proxy forwards the body as is).
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


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
    url: str,
    *,
    concurrency: int,
    stream: bool,
    warmup: float,
    duration: float,
    key: str | None,
    watch_pids: dict[str, int],
    request_timeout: float,
) -> dict[str, Any]:
    body = request_body(stream)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    done_marker = b"data: [DONE]"

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
                    elif stream and not data.rstrip().endswith(done_marker):
                        error, detail = (
                            "stream without [DONE]",
                            data[-300:].decode(errors="replace"),
                        )
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
    ap.add_argument("--url", required=True, help="the chat completions URL")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--key", help="gateway key, sent as Authorization: Bearer")
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
                args.url,
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
