"""``[server]``: where `aigw serve` listens and how long clients may take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table

DEFAULT_PORT = 8787
LOG_FORMATS = ("text", "json")


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_request_mb: float = 32.0
    # On SIGTERM: seconds to let calls in flight finish before they are cut (and
    # recorded with estimated usage). Keep it below the supervisor's kill timeout.
    drain_seconds: float = 30.0
    # Seconds a client has to send a request's headers, from connecting or from the
    # end of its previous response (so an idle keep-alive connection closes too).
    header_timeout: float = 10.0
    # Seconds a client has to send a request's body once its headers are in.
    body_timeout: float = 60.0
    # How `aigw serve` writes its log and access lines: "text" or "json".
    log_format: str = "text"


def _read(r: Reader) -> ServerConfig:
    d = ServerConfig()
    port = r.get("port", int, d.port)
    if not 0 <= port <= 65535:
        r.fail("port", f"must be between 0 and 65535 (got {port})")
    log_format = r.get("log_format", str, d.log_format)
    if log_format not in LOG_FORMATS:
        r.fail("log_format", f"must be one of {', '.join(LOG_FORMATS)} (got {log_format!r})")
    return ServerConfig(
        host=r.get("host", str, d.host),
        port=port,
        max_request_mb=r.number("max_request_mb", d.max_request_mb, minimum=0.001),
        drain_seconds=r.number("drain_seconds", d.drain_seconds),
        header_timeout=r.number("header_timeout", d.header_timeout, minimum=0.1),
        body_timeout=r.number("body_timeout", d.body_timeout, minimum=0.1),
        log_format=log_format,
    )


def _write(s: ServerConfig) -> dict[str, Any]:
    return {
        "host": s.host,
        "port": s.port,
        "max_request_mb": s.max_request_mb,
        "drain_seconds": s.drain_seconds,
        "header_timeout": s.header_timeout,
        "body_timeout": s.body_timeout,
        "log_format": s.log_format,
    }


SERVER = table(
    "# Where `aigw serve` listens; max_request_mb caps a request body. A client has\n"
    "# header_timeout seconds to send a request's headers (from connecting, or from\n"
    "# its previous response: idle keep-alive connections close then too) and\n"
    "# body_timeout seconds to send its body; slower connections are closed. On\n"
    "# SIGTERM the server stops accepting connections and lets calls in flight\n"
    "# finish for up to drain_seconds; calls still running then are cut and\n"
    "# recorded with estimated usage. Keep it below your supervisor's kill timeout\n"
    "# (Kubernetes' terminationGracePeriodSeconds, `docker stop -t`, systemd's\n"
    '# TimeoutStopSec). log_format is "text" or "json" (one object per line): the\n'
    "# server's log and its access log, one line per request (`--log-format`).",
    ServerConfig,
    _read,
    _write,
)
