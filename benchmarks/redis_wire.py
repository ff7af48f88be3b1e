"""Client cost of one limit-script call: redis-py's asyncio client against aigw's own
connection (:mod:`aigw.limits.wire`), the same script and arguments, alternated.

    python -m benchmarks.redis_wire
    python -m benchmarks.redis_wire --redis redis://127.0.0.1:6379/0 --calls 8000

Prints, per concurrency (1 and 32 callers), the wall time and this process's CPU time
per call (medians of two runs each). The CPU is the number that matters on a busy
machine; the wall time includes Redis's own work and the wake-ups between processes.
The script only echoes (it touches no key).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aigw.limits.wire import RedisWire

SCRIPT = "return {'ok', ARGV[1], ARGV[2], ARGV[3]}"
# An admission's shape: a lease id, tokens, lease seconds, the scope count, 9 per scope.
KEYS = [f"aigwbench:{i}" for i in range(11)]
ARGS: list[Any] = ["1234.abcd.1", 120, 60.0, 2, *([100, 100, 1000, 1000, -1, -1, 0, 0, 0] * 2)]


async def measure(
    call: Callable[[], Awaitable[Any]], calls: int, concurrency: int
) -> tuple[float, float]:
    for _ in range(200):
        await call()

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return (time.perf_counter() - t0) / calls * 1e6, (time.process_time() - c0) / calls * 1e6


async def main(url: str, calls: int) -> None:
    client = aioredis.Redis.from_url(
        url, max_connections=1024, retry=Retry(NoBackoff(), 0), decode_responses=True
    )
    wire = RedisWire(url, os.environ.get("AIGW_COUNTERS_PASSWORD") or None)
    theirs, ours = client.register_script(SCRIPT), wire.script(SCRIPT)
    try:
        for concurrency in (1, 32):
            got: dict[str, list[tuple[float, float]]] = {}
            for name, script in (("redis-py", theirs), ("wire", ours)) * 2:

                def call(script: Any = script) -> Awaitable[Any]:
                    return script(keys=KEYS, args=ARGS)  # type: ignore[no-any-return]

                got.setdefault(name, []).append(await measure(call, calls, concurrency))
            for name, runs in got.items():
                wall = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                print(
                    f"c{concurrency:<3} {name:<9} wall {wall:7.1f} us/call   cpu {cpu:6.1f} us/call"
                )
    finally:
        await client.aclose()
        await wire.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--redis",
        default=os.environ.get("AIGW_TEST_REDIS", "redis://127.0.0.1:6379/0"),
        help="a Redis server URL",
    )
    p.add_argument("--calls", type=int, default=4000, help="calls per measurement")
    args = p.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.redis, args.calls))
    else:
        uvloop.run(main(args.redis, args.calls))
