"""Bits shared by the benchmark's processes: event loop choice, CPU pinning, serving."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import Any

from aiohttp import web


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop when installed (as `aigw serve` does), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def pin(cpus: str | None) -> None:
    """Restrict this process (and threads it starts later) to ``cpus``, e.g. "0" or "0,1"."""
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


async def serve_forever(app: web.Application, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, with the same server options as `aigw serve`."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False, shutdown_timeout=2)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")
