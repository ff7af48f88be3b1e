"""``[counters]``: where rate limits, concurrency, budgets, quotas and breakers are counted.

In process (the default) suits one ``aigw serve``; a Redis URL lets several processes
(on several machines) share one set of counters, so a limit holds for all of them
together instead of once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aigw.config.base import Reader, table

ON_UNAVAILABLE = ("refuse", "local")
_SCHEMES = ("redis", "rediss", "unix")


@dataclass(slots=True)
class CountersConfig:
    # "": in this process. "redis://host:6379/0" (or rediss://, unix://): shared.
    url: str = ""
    # Redis unreachable: "refuse" answers 503 (limits cannot be checked, so nothing
    # passes unchecked); "local": fall back to per-process limits until it is back.
    on_unavailable: str = "refuse"
    # Prepended to every Redis key, so several gateways (or tests) can share a server.
    prefix: str = "aigw:"

    @property
    def shared(self) -> bool:
        return bool(self.url)


def check_url(url: str) -> str | None:
    """Why ``url`` is refused as a counters URL, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in _SCHEMES:
        return f"must start with redis://, rediss:// or unix:// (got {url!r})"
    if parts.password is not None:
        return (
            "must not contain a password (config.toml is no place for secrets): set "
            "AIGW_COUNTERS_PASSWORD (or REDISCLI_AUTH), or keep it in the OS keyring "
            "(service 'aigw', user 'aigw-counters')"
        )
    if parts.scheme != "unix" and not parts.hostname:
        return f"has no host (got {url!r})"
    return None


def _read(r: Reader) -> CountersConfig:
    d = CountersConfig()
    url = r.get("url", str, d.url).strip()
    if url:
        problem = check_url(url)
        if problem is not None:
            r.fail("url", problem)
    mode = r.get("on_unavailable", str, d.on_unavailable)
    if mode not in ON_UNAVAILABLE:
        r.fail("on_unavailable", f'must be "refuse" or "local" (got {mode!r})')
    prefix = r.get("prefix", str, d.prefix)
    if not prefix or any(c.isspace() for c in prefix):
        r.fail("prefix", f"must be a non-empty string without spaces (got {prefix!r})")
    return CountersConfig(url=url, on_unavailable=mode, prefix=prefix)


def _write(c: CountersConfig) -> dict[str, Any]:
    return {"url": c.url, "on_unavailable": c.on_unavailable, "prefix": c.prefix}


COUNTERS = table(
    "# Where rate limits, concurrency, budget reservations, provider quotas and\n"
    '# circuit breakers are counted. url = "": in this process (one aigw serve). A\n'
    "# Redis URL (redis://host:6379/0) shares them between several aigw processes, so\n"
    "# limits hold for all of them together; its\n"
    "# password comes from AIGW_COUNTERS_PASSWORD (or REDISCLI_AUTH) or the keyring,\n"
    '# never this file. on_unavailable: Redis unreachable -> "refuse" (503) or "local"\n'
    "# (per-process limits until it is back). prefix: prepended to every Redis key.",
    CountersConfig,
    _read,
    _write,
)
