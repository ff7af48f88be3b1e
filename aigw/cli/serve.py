"""`aigw serve`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from aigw import __version__, paths
from aigw.cli.common import console, load_config
from aigw.config import Config


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop where it is installed (faster I/O), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _run(cfg: Config, host: str, port: int) -> None:
    from aiohttp import web

    from aigw.app import GATEWAY, bound_port, create_app

    state_file = paths.resolve().state_file
    app = create_app(cfg, state_file)
    # handler_cancellation=False: a client that disconnects must not cancel the handler
    # before its ledger row is written.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False, shutdown_timeout=10)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = bound_port(site)
        gw = app[GATEWAY]
        console.print(f"[bold]aigw {__version__}[/] listening on [bold]http://{host}:{bound}[/]")
        console.print(f"  state   {state_file}")
        console.print(f"  config  {cfg.path}")
        for p in gw.providers.values():
            key = "no key needed" if p.type == "mock" else f"key from {p.key_source or 'nowhere!'}"
            console.print(f"  provider {p.name} ({p.type}, {key})")
        base = f"http://{host}:{bound}"
        console.print(f"  OpenAI clients:    OPENAI_BASE_URL={base}/v1")
        console.print(f"  Anthropic clients: ANTHROPIC_BASE_URL={base}")
        console.print(f"  Gemini clients:    genai.Client(http_options={{'base_url': '{base}'}})")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        console.print("shutting down: finishing requests and committing the ledger")
    finally:
        await runner.cleanup()


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Interface to listen on (default from config: 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (default from config: 8787; 0 picks a free one)."),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the gateway: OpenAI-compatible endpoint, key auth and the cost ledger."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(required=True)
    run_loop(_run(cfg, host or cfg.server.host, cfg.server.port if port is None else port))
