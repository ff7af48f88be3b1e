"""Failover under load: what a dead target and a flaky one cost the clients.

One process runs the benchmark's fake upstream (:mod:`benchmarks.upstream`) twice --
``ok``, and ``flaky``, which answers every other request with a 500 -- plus a port
nothing listens on (``dead``: connections refused), an in-process aigw, and a load
of OpenAI chat completions at concurrency ``-c``. Scenarios, each a route of model
``m``:

- ``healthy``: ``[ok]`` -- the reference;
- ``flaky``: ``[flaky]`` -- retries of one target (a 500 for half the requests);
- ``failover``: ``[dead, flaky]`` with breakers that never open -- every call pays one
  refused connection before it reaches the flaky target;
- ``open-breaker``: ``[dead, flaky]`` with the default breakers -- the dead target's
  breaker opens after a few calls and is then skipped at no cost.

It reports client-visible errors (the target: 0), median and p95 latency, the mean
``x-aigw-attempts``, and each scenario's added median latency against ``healthy``.

Errors: breakers never fail a call fast (panic mode, :mod:`aigw.pipeline.attempts`),
so what is left is chance. The flaky target fails about half its requests
independently of the call, so a call fails only when all its tries at it fail: with
``max_attempts = 20`` (``--max-attempts``, the benchmark's documented setting) that is
0.5**20 (1 call in a million) where it gets all twenty tries (``flaky``,
``open-breaker``) and 0.5**19 in ``failover``, where the first try goes to the dead
target (which a call does not go back to: it refused the connection).
Everything shares one event loop on purpose: the numbers are latency *differences*.

Run: ``python -m benchmarks.failover --duration 5 -c 32``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from aigw.app import create_app
from aigw.config import Config, ModelConfig, ProviderConfig, TargetConfig
from aigw.gateway import GATEWAY
from aigw.server import Server
from benchmarks import upstream

BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}


def flaky_app() -> web.Application:
    """The fake upstream, with a 500 for every other request."""
    count = 0

    @web.middleware
    async def half(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        nonlocal count
        count += 1
        if count % 2 == 0 and request.method == "POST":
            await request.read()
            return web.json_response(
                {"error": {"message": "flaky", "type": "server_error"}}, status=500
            )
        return await handler(request)

    app = upstream.create_app()
    app.middlewares.append(half)
    return app


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def listen(app: web.Application) -> Server:
    server = Server(app, shutdown_timeout=1)
    await server.setup()
    await server.listen("127.0.0.1", 0)
    return server


async def scenario(
    name: str, urls: dict[str, str], targets: list[str], breakers: bool, args: argparse.Namespace
) -> dict[str, float]:
    cfg = Config()
    cfg.routing.max_attempts = args.max_attempts
    cfg.upstream.models_refresh = 0  # the fakes list no models: no listing noise
    cfg.routing.backoff = 0.005
    cfg.routing.backoff_max = 0.02
    if not breakers:
        # Past the config's own limit (1000) on purpose: at 1000 the dead target's
        # breaker opened a few seconds in, and the rest of "failover" measured the
        # open-breaker path (mean attempts 2.25 instead of about 4).
        cfg.routing.breaker_failures = 10**9
        cfg.routing.breaker_failure_ratio = 1.0
        cfg.routing.breaker_min_calls = 100000
    for p, url in urls.items():
        cfg.providers[p] = ProviderConfig(p, "openai", url)
    cfg.models["m"] = ModelConfig(
        "m",
        targets[0],
        "gpt-5.4-mini",
        targets=tuple(TargetConfig(t, "gpt-5.4-mini") for t in targets),
    )
    with tempfile.TemporaryDirectory() as tmp:
        gw_server = await listen(create_app(cfg, Path(tmp) / "state.db"))
        try:
            key, _ = await gw_server.app[GATEWAY].store.keys.create(team="bench")
            url = f"http://127.0.0.1:{gw_server.port}/v1/chat/completions"
            latencies: list[float] = []
            attempts: list[int] = []
            errors = 0
            stop = time.perf_counter() + args.duration
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn) as http:

                async def worker() -> None:
                    nonlocal errors
                    headers = {"Authorization": f"Bearer {key}"}
                    while time.perf_counter() < stop:
                        t0 = time.perf_counter()
                        async with http.post(url, json=BODY, headers=headers) as r:
                            await r.read()
                            if r.status != 200:
                                errors += 1
                            attempts.append(int(r.headers.get("x-aigw-attempts", "0")))
                        latencies.append(time.perf_counter() - t0)

                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        finally:
            await gw_server.runner.cleanup()
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "attempts": statistics.mean(attempts),
    }


async def main(args: argparse.Namespace) -> None:
    ok = await listen(upstream.create_app())
    flaky = await listen(flaky_app())
    urls = {
        "ok": f"http://127.0.0.1:{ok.port}/v1",
        "flaky": f"http://127.0.0.1:{flaky.port}/v1",
        "dead": f"http://127.0.0.1:{dead_port()}/v1",
    }
    plan = [
        ("healthy", ["ok"], True),
        ("flaky", ["flaky"], True),
        ("failover", ["dead", "flaky"], False),
        ("open-breaker", ["dead", "flaky"], True),
    ]
    results = {}
    try:
        for name, targets, breakers in plan:
            results[name] = await scenario(name, urls, targets, breakers, args)
    finally:
        await ok.runner.cleanup()
        await flaky.runner.cleanup()
    base = results["healthy"]["p50_ms"]
    print(f"c={args.concurrency}, {args.duration:g} s per scenario, pid {os.getpid()}")
    print("scenario       requests  errors  p50 ms  p95 ms  attempts  added p50 ms")
    for name, r in results.items():
        print(
            f"{name:<14} {r['requests']:>8.0f}  {r['errors']:>6.0f}  {r['p50_ms']:>6.2f}  "
            f"{r['p95_ms']:>6.2f}  {r['attempts']:>8.2f}  {r['p50_ms'] - base:>+12.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=20,
        help="[routing] max_attempts (the config allows 1..50)",
    )
    asyncio.run(main(parser.parse_args()))
