"""``[limits]``: how rate limits and provider quotas behave."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class LimitsConfig:
    """How rate limits and provider quotas behave (the limits are set per team and key)."""

    # Share of a per-minute limit that may be spent at once: 1.0 lets a full minute's
    # allowance through in a burst (then it refills smoothly); 0.1 allows six seconds'
    # worth at once.
    burst: float = 1.0
    # Output tokens counted up front against tokens-per-minute limits and quotas for a
    # request without max_tokens (settled to the real count when it ends).
    default_output_tokens: int = 1024
    # Longest wait in a provider quota's priority queue before a 429.
    queue_max_wait: float = 30.0
    # Share of a provider quota low-priority requests may use.
    low_priority_share: float = 0.5
    # Seconds between batched writes of the counters to the state database.
    persist_interval: float = 1.0


def _read(r: Reader) -> LimitsConfig:
    d = LimitsConfig()
    cfg = LimitsConfig(
        burst=r.number("burst", d.burst, minimum=0.001),
        default_output_tokens=r.get("default_output_tokens", int, d.default_output_tokens),
        queue_max_wait=r.number("queue_max_wait", d.queue_max_wait),
        low_priority_share=r.number("low_priority_share", d.low_priority_share, minimum=0.01),
        persist_interval=r.number("persist_interval", d.persist_interval, minimum=0.05),
    )
    if cfg.burst > 1:
        r.fail("burst", f"must be at most 1 (a whole minute's allowance; got {cfg.burst:g})")
    if cfg.low_priority_share > 1:
        r.fail("low_priority_share", f"must be at most 1 (got {cfg.low_priority_share:g})")
    if cfg.default_output_tokens < 0:
        r.fail("default_output_tokens", f"must be >= 0 (got {cfg.default_output_tokens})")
    return cfg


def _write(lim: LimitsConfig) -> dict[str, Any]:
    return {
        "burst": lim.burst,
        "default_output_tokens": lim.default_output_tokens,
        "queue_max_wait": lim.queue_max_wait,
        "low_priority_share": lim.low_priority_share,
        "persist_interval": lim.persist_interval,
    }


LIMITS = table(
    "# Rate limits are set per team and key (`aigw teams create NAME --rpm 60`).\n"
    "# burst: share of a minute's allowance usable at once (1.0 = all of it, then a\n"
    "# smooth refill). default_output_tokens: counted against tokens-per-minute\n"
    "# limits up front for a request without max_tokens (settled to the real count).\n"
    "# Provider quotas: a request waits at most queue_max_wait seconds, in priority\n"
    "# order, then gets a 429; low priority may use only low_priority_share of a quota.\n"
    "# Counters are written to the state database every persist_interval seconds.",
    LimitsConfig,
    _read,
    _write,
)
