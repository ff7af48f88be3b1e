"""`aigw serve`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from rich.markup import escape

from aigw import __version__, paths
from aigw import config as config_mod
from aigw.cli.common import console, load_config
from aigw.config import Config
from aigw.errors import AigwError, ConfigError

_ANY = ("0.0.0.0", "::", "")
_LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger("aigw.serve")


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop where it is installed (faster I/O), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def url_host(host: str) -> str:
    """A host a client can put in a URL: the wildcard addresses become loopback."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _requests(n: int) -> str:
    return f"{n} request" if n == 1 else f"{n} requests"


def _hangup(cfg: Config) -> None:
    """SIGHUP: check the config file and say whether a restart is needed.

    The configuration is not reloaded: providers, routes, quotas and the HTTP
    session are built from it once at start, and swapping them under requests in
    flight is not worth the risk. Gateway keys and teams live in the state database
    and already reload by themselves.
    """
    path = cfg.path
    if path is None:
        log.warning("SIGHUP ignored: aigw serve does not reload its configuration")
        return
    try:
        changed = config_mod.to_dict(config_mod.load(path)) != config_mod.to_dict(cfg)
    except ConfigError as exc:
        log.warning("SIGHUP: %s; the running server keeps the configuration it started with", exc)
        return
    if changed:
        log.warning(
            "SIGHUP: %s changed; restart aigw serve to apply it (the configuration is "
            "not reloaded while running; keys and teams reload by themselves)",
            path,
        )
    else:
        log.warning("SIGHUP: %s is unchanged; the configuration is not reloaded", path)


async def _run(cfg: Config, host: str, port: int) -> None:
    from aigw.app import create_app
    from aigw.gateway import GATEWAY
    from aigw.server import Server, settle_heap

    state_file = paths.resolve().state_file
    app = create_app(cfg, state_file)
    server = Server(app, shutdown_timeout=5)
    await server.setup()
    try:
        gw = app[GATEWAY]
        stop = asyncio.Event()

        def on_stop() -> None:
            if stop.is_set():
                gw.drain.hurry()  # a second SIGTERM or Ctrl-C: cut now
            stop.set()

        # Before the socket opens: a signal must never find the default action (exit).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_stop)
        loop.add_signal_handler(signal.SIGHUP, _hangup, cfg)
        try:
            bound = await server.listen(host, port, backlog=1024)
        except OSError as exc:
            raise AigwError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        settle_heap()
        base = f"http://{url_host(host)}:{bound}"
        where = " (all interfaces)" if host in _ANY else ""
        console.print(f"[bold]aigw {__version__}[/] listening on [bold]{escape(base)}[/]{where}")
        console.print(f"  state   {escape(str(state_file))}")
        console.print(f"  config  {escape(str(cfg.path))}")
        for p in gw.providers.values():
            needs = p.adapter.needs_key
            key = f"key from {p.key_source or 'nowhere!'}" if needs else "no key needed"
            console.print(escape(f"  provider {p.name} ({p.type}, {key})"))
        console.print(f"  OpenAI clients:    OPENAI_BASE_URL={escape(base)}/v1")
        console.print(f"  Anthropic clients: ANTHROPIC_BASE_URL={escape(base)}")
        console.print(
            f"  Gemini clients:    genai.Client(http_options={{'base_url': '{escape(base)}'}})"
        )
        console.print(
            f"  dashboard {escape(base)}/dashboard (an admin key: aigw keys create --admin)"
            f"   metrics {escape(base)}/metrics"
        )
        sys.stdout.flush()
        await stop.wait()
        seconds = cfg.server.drain_seconds
        console.print(
            f"shutting down: new connections refused; waiting up to {seconds:g} s for "
            f"{_requests(len(gw.drain.tasks))} in flight (signal again to cut them now)"
        )
        sys.stdout.flush()
        cut = await server.drain(gw.drain, seconds)
        if cut:
            console.print(
                f"cut {_requests(cut)} still running after {gw.drain.waited:.1f} s; "
                "recorded in the ledger with estimated usage"
            )
        console.print("committing the ledger and closing")
    finally:
        await server.close()


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Interface to listen on (default from config: 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Port (default from config: 8787; 0 picks a free one)."
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help="debug, info, warning or error. The access log (one line per request) "
            "is written at info: warning turns it off.",
        ),
    ] = "info",
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="text (key=value pairs) or json (one object per line) for the log and "
            "the access log (default from config: [server] log_format, text).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the gateway: OpenAI-compatible endpoint, key auth and the cost ledger."""
    from aigw.observe import access, tracing

    if log_level.lower() not in _LEVELS:
        raise AigwError(f"--log-level must be one of {', '.join(_LEVELS)} (got {log_level!r})")
    if log_format is not None and log_format not in access.LOG_FORMATS:
        raise AigwError(
            f"--log-format must be one of {', '.join(access.LOG_FORMATS)} (got {log_format!r})"
        )
    cfg = load_config(required=True)
    tracing.check(cfg.otel)
    access.configure(log_level, log_format or cfg.server.log_format)
    run_loop(_run(cfg, host or cfg.server.host, cfg.server.port if port is None else port))
