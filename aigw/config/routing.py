"""``[routing]``: retries, failover and circuit breakers for calls to providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table

# The most attempts a call may make. The deadline bounds a call's time whatever the
# count; a route with a target that fails half its calls needs about 20 to hide it.
MAX_ATTEMPTS = 50


@dataclass(slots=True)
class RoutingConfig:
    """How hard aigw tries before a call fails, and when it stops trying a target."""

    max_attempts: int = 3  # upstream attempts per call, over all targets of its route
    deadline: float = 600.0  # seconds from the first attempt; no attempt starts after it
    backoff: float = 0.25  # seconds before the first retry of a target; doubles, jittered
    backoff_max: float = 4.0
    # A Retry-After up to this long is waited for; a longer one moves to the next target.
    max_retry_after: float = 5.0
    # Circuit breaker per target: open after this many failures in a row, or when at
    # least breaker_min_calls calls in the last breaker_window seconds failed at
    # breaker_failure_ratio or more; stay open breaker_cooldown seconds, then let one
    # probe through.
    breaker_failures: int = 5
    breaker_failure_ratio: float = 0.8
    breaker_min_calls: int = 20
    breaker_window: float = 30.0
    breaker_cooldown: float = 30.0


def _read(r: Reader) -> RoutingConfig:
    d = RoutingConfig()

    def integer(key: str, default: int, low: int, high: int) -> int:
        value: int = r.get(key, int, default)
        if not low <= value <= high:
            r.fail(key, f"must be an integer from {low} to {high} (got {value!r})")
        return value

    ratio = r.number("breaker_failure_ratio", d.breaker_failure_ratio, minimum=0.01)
    if ratio > 1:
        r.fail("breaker_failure_ratio", f"must be at most 1 (got {ratio!r})")
    backoff = r.number("backoff", d.backoff)
    backoff_max = r.number("backoff_max", d.backoff_max)
    if backoff_max < backoff:
        r.fail("backoff_max", f"must be at least backoff ({backoff:g})")
    return RoutingConfig(
        max_attempts=integer("max_attempts", d.max_attempts, 1, MAX_ATTEMPTS),
        deadline=r.number("deadline", d.deadline, minimum=0.001),
        backoff=backoff,
        backoff_max=backoff_max,
        max_retry_after=r.number("max_retry_after", d.max_retry_after),
        breaker_failures=integer("breaker_failures", d.breaker_failures, 1, 1000),
        breaker_failure_ratio=ratio,
        breaker_min_calls=integer("breaker_min_calls", d.breaker_min_calls, 1, 100000),
        breaker_window=r.number("breaker_window", d.breaker_window, minimum=0.1),
        breaker_cooldown=r.number("breaker_cooldown", d.breaker_cooldown, minimum=0.001),
    )


def _write(c: RoutingConfig) -> dict[str, Any]:
    return {
        "max_attempts": c.max_attempts,
        "deadline": c.deadline,
        "backoff": c.backoff,
        "backoff_max": c.backoff_max,
        "max_retry_after": c.max_retry_after,
        "breaker_failures": c.breaker_failures,
        "breaker_failure_ratio": c.breaker_failure_ratio,
        "breaker_min_calls": c.breaker_min_calls,
        "breaker_window": c.breaker_window,
        "breaker_cooldown": c.breaker_cooldown,
    }


ROUTING = table(
    "# Retries and failover: at most max_attempts upstream attempts per call within\n"
    "# deadline seconds, exponential backoff with jitter between retries of a target,\n"
    "# a Retry-After up to max_retry_after waited for. A target's circuit breaker opens\n"
    "# after breaker_failures failures in a row (or a failure ratio over a window) and\n"
    "# lets one probe through after breaker_cooldown seconds.",
    RoutingConfig,
    _read,
    _write,
)
