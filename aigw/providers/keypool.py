"""Several API keys for one provider: spread the load, step past a key that fails.

``AIGW_<NAME>_API_KEY="k1,k2,k3"`` (or the keyring entry that ``aigw providers set-key
NAME --add`` grows) gives a provider a pool. Every call asks the pool for the order in
which to try its keys (round robin over the keys that are not benched); a key answered
with 401/403 is benched for a while (``auth_bench`` seconds), one answered with 429 for
its Retry-After. The caller moves on to the next key of the same order without telling
the client.

Keys never leave this module but to build an upstream request and to redact upstream
text (:meth:`KeyPool.secrets`); health and logs name a key by its position only.

The interface is async so a shared pool (issue 14: Redis) can implement it; the
in-process :class:`LocalKeyPool` never awaits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

log = logging.getLogger("aigw.providers.keypool")

# The statuses one key can earn without the request being at fault.
ROTATE_ON = frozenset({401, 403, 429})

AUTH_BENCH = 300.0  # a rejected key is retried after 5 minutes (it may be fixed)
RATE_BENCH = 10.0  # a 429 without Retry-After
MAX_BENCH = 3600.0  # a Retry-After longer than this is taken as an hour


@dataclass(frozen=True, slots=True)
class KeyHealth:
    """One key's state, fit for logs, the state file and ``aigw models list``: no key."""

    index: int  # 1-based position in the pool
    available: bool
    benched_for: float  # seconds left on the bench (0 when available)
    last_status: int | None  # the status that benched it, if any
    failures: int


class KeyPool(Protocol):
    """What the upstream sender needs of a provider's keys."""

    def secrets(self) -> tuple[str, ...]:
        """Every key of the pool: for redaction, never for output."""
        ...

    def __len__(self) -> int: ...

    async def order(self) -> Sequence[str]:
        """The keys to try for one request, best first: the available keys in round
        robin order, or, when every key is benched, the one whose bench ends first."""
        ...

    async def failed(self, key: str, status: int, retry_after: str | None) -> None:
        """``key`` got ``status`` (one of :data:`ROTATE_ON`): bench it."""
        ...

    async def health(self) -> list[KeyHealth]: ...


def bench_seconds(status: int, retry_after: str | None, auth_bench: float = AUTH_BENCH) -> float:
    """How long a key sits out after ``status``: Retry-After (seconds or an HTTP date)
    for a 429, else a fixed time."""
    if status != 429:
        return auth_bench
    if retry_after is None:
        return RATE_BENCH
    value = retry_after.strip()
    seconds: float | None = None
    if value.isascii() and value.isdigit() and len(value) <= 10:
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            seconds = None
    if seconds is None:
        return RATE_BENCH
    return min(max(seconds, 0.0), MAX_BENCH)


class LocalKeyPool:
    """A pool held in this process: round robin, benches in a dict."""

    def __init__(
        self,
        provider: str,
        keys: Sequence[str],
        *,
        auth_bench: float = AUTH_BENCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._keys = tuple(keys)
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._until = [0.0] * len(self._keys)
        self._status: list[int | None] = [None] * len(self._keys)
        self._failures = [0] * len(self._keys)
        self._next = 0
        self.auth_bench = auth_bench
        self.clock = clock

    def __repr__(self) -> str:  # never the keys
        return f"LocalKeyPool({self.provider!r}, {len(self._keys)} keys)"

    def __len__(self) -> int:
        return len(self._keys)

    def secrets(self) -> tuple[str, ...]:
        return self._keys

    async def order(self) -> Sequence[str]:
        keys = self._keys
        n = len(keys)
        if n <= 1:
            return keys
        start = self._next
        self._next = (start + 1) % n
        now = self.clock()
        until = self._until
        ready = [keys[(start + i) % n] for i in range(n) if until[(start + i) % n] <= now]
        if ready:
            return ready
        return (keys[min(range(n), key=until.__getitem__)],)

    async def failed(self, key: str, status: int, retry_after: str | None) -> None:
        i = self._index.get(key)
        if i is None or len(self._keys) < 2:  # a lone key is used whatever it earned
            return
        seconds = bench_seconds(status, retry_after, self.auth_bench)
        self._until[i] = self.clock() + seconds
        self._status[i] = status
        self._failures[i] += 1
        log.warning(
            "provider %s: key %d of %d got %d; not used for %.0f s",
            self.provider,
            i + 1,
            len(self._keys),
            status,
            seconds,
        )

    async def health(self) -> list[KeyHealth]:
        now = self.clock()
        return [
            KeyHealth(
                i + 1,
                self._until[i] <= now,
                max(0.0, self._until[i] - now),
                self._status[i],
                self._failures[i],
            )
            for i in range(len(self._keys))
        ]


EMPTY_POOL = LocalKeyPool("", ())
