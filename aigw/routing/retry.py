"""Which failed attempts are worth another, and how long to wait before it.

Retried: connection failures, timeouts, a stream that broke before its first content,
and the statuses that mean "not now" (408, 409, 429, 500, 502, 503, 504, 529). A
target that rejects the gateway's own credentials (401/403) is not retried but may
be failed over from. Any other 4xx is the request's own fault: never retried.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

from aigw.config import RoutingConfig
from aigw.errors import GatewayError
from aigw.usage import Usage

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# The provider rejected aigw's credentials: another target may still serve the call.
SWITCH_STATUSES = frozenset({401, 403})

# What went wrong with an attempt (the ledger records it per attempt).
CONNECT = "connect"  # could not connect, or the connection broke before an answer
TIMEOUT = "timeout"  # no answer, or silence, within the timeouts
STATUS = "status"  # the provider answered with an error status
CUT = "cut"  # the answer was cut or malformed before anything reached the client
STREAM = "stream"  # an error event before the stream's first content


class UpstreamFailed(GatewayError):
    """One attempt at one target failed before anything reached the client.

    It is the client's error if no other attempt succeeds; ``kind`` and
    ``upstream_status`` say whether another attempt may help, ``usage`` what the
    provider reported for the failed attempt (so it can be billed).
    """

    def __init__(
        self,
        err: GatewayError,
        kind: str,
        upstream_status: int | None = None,
        retry_after: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(
            err.status,
            err.message,
            type=err.type,
            code=err.code,
            param=err.param,
            headers=err.headers,
        )
        self.kind = kind
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.usage = usage

    @property
    def retryable(self) -> bool:
        """Another attempt (at this or another target) may succeed."""
        if self.kind != STATUS:
            return True
        return self.upstream_status in RETRY_STATUSES

    @property
    def refused(self) -> bool:
        """Nothing answered at the target's address (connection refused, no such host):
        a retry a few milliseconds later is unlikely to find anyone there."""
        return self.kind == CONNECT and self.code == "upstream_unreachable"

    @property
    def switchable(self) -> bool:
        """Another target may succeed where this one cannot."""
        return self.retryable or self.upstream_status in SWITCH_STATUSES

    @property
    def unhealthy(self) -> bool:
        """The failure counts against the target's circuit breaker."""
        return self.switchable and self.upstream_status not in (408, 409)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After value (delay-seconds or HTTP date) in seconds; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    seconds: float = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


def backoff(config: RoutingConfig, retry: int, rng: random.Random) -> float:
    """Seconds before the ``retry``-th retry (1, 2, ...) of a target: exponential with
    full jitter in its upper half, so retries of many calls do not arrive together."""
    ceiling = min(config.backoff_max, config.backoff * 2.0 ** (retry - 1))
    return ceiling * (0.5 + rng.random() / 2)
