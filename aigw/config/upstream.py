"""``[upstream]``: timeouts for calls to providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class UpstreamConfig:
    """Timeouts (seconds) for calls to providers."""

    connect_timeout: float = 10.0
    # Until the response headers arrive. Non-streamed calls send headers only after
    # the whole answer is generated, so this must cover a long generation.
    first_byte_timeout: float = 300.0
    # Longest silence allowed between two chunks of a streamed answer.
    idle_timeout: float = 120.0


def _read(r: Reader) -> UpstreamConfig:
    d = UpstreamConfig()
    return UpstreamConfig(
        connect_timeout=r.number("connect_timeout", d.connect_timeout, minimum=0.001),
        first_byte_timeout=r.number("first_byte_timeout", d.first_byte_timeout, minimum=0.001),
        idle_timeout=r.number("idle_timeout", d.idle_timeout, minimum=0.001),
    )


def _write(u: UpstreamConfig) -> dict[str, Any]:
    return {
        "connect_timeout": u.connect_timeout,
        "first_byte_timeout": u.first_byte_timeout,
        "idle_timeout": u.idle_timeout,
    }


UPSTREAM = table(
    "# Timeouts in seconds for calls to providers: connecting, waiting for the first\n"
    "# byte of the answer, and the longest silence inside a streamed answer.",
    UpstreamConfig,
    _read,
    _write,
)
