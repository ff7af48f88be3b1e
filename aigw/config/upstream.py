"""``[upstream]``: timeouts for calls to providers, and how often their model lists
are fetched."""

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
    # How often each provider's own model list (GET /models) is fetched again; the
    # first fetch starts with the server, in the background. 0: never fetch, list
    # the shipped price table's models instead.
    models_refresh: float = 3600.0
    # Longest a provider may take to list its models (all pages together).
    models_timeout: float = 10.0


def _read(r: Reader) -> UpstreamConfig:
    d = UpstreamConfig()
    return UpstreamConfig(
        connect_timeout=r.number("connect_timeout", d.connect_timeout, minimum=0.001),
        first_byte_timeout=r.number("first_byte_timeout", d.first_byte_timeout, minimum=0.001),
        idle_timeout=r.number("idle_timeout", d.idle_timeout, minimum=0.001),
        models_refresh=r.number("models_refresh", d.models_refresh, minimum=0),
        models_timeout=r.number("models_timeout", d.models_timeout, minimum=0.001),
    )


def _write(u: UpstreamConfig) -> dict[str, Any]:
    return {
        "connect_timeout": u.connect_timeout,
        "first_byte_timeout": u.first_byte_timeout,
        "idle_timeout": u.idle_timeout,
        "models_refresh": u.models_refresh,
        "models_timeout": u.models_timeout,
    }


UPSTREAM = table(
    "# Timeouts in seconds for calls to providers: connecting, waiting for the first\n"
    "# byte of the answer, and the longest silence inside a streamed answer.\n"
    "# models_refresh: seconds between fetches of each provider's own model list\n"
    "# (0: never fetch, list the shipped price table); models_timeout: the limit on one.",
    UpstreamConfig,
    _read,
    _write,
)
