"""The directory: every gateway key (by hash) and every team (by name), in memory.

Both live in one immutable :class:`Snapshot`, replaced whole, so a request never sees
a key without the team it was loaded with. One watcher asks SQLite for the generation
number (bumped by every key and team change, triggers in migration 0002) twice a
second and reloads when it changed, so `aigw keys revoke` and `aigw teams update` take
effect within a second, no restart, and no request waits on SQLite.

A key that is not in memory is looked up in the store once before it is refused: a
key works the moment `aigw keys create` returns, and its team's limits apply from its
first call (the lookup reloads the whole snapshot). Keys the store does not know are
remembered for :data:`MISS_SECONDS` (at most :data:`MAX_MISSES` of them: they are
client input), and concurrent misses of one key share one lookup, so a client
hammering an unknown key costs one store query per period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from aigw.model import KeyRecord, TeamRecord
from aigw.store.base import KeyStore, TeamStore

log = logging.getLogger("aigw.directory")

POLL_SECONDS = 0.5
MISS_SECONDS = 1.0
MAX_MISSES = 4096  # key hashes are 64 characters: a bounded few hundred KiB


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Keys and teams as of one generation of the store."""

    generation: int = -1
    keys: Mapping[str, KeyRecord] = field(default_factory=lambda: MappingProxyType({}))
    teams: Mapping[str, TeamRecord] = field(default_factory=lambda: MappingProxyType({}))


class Directory:
    """Keys and teams in memory, one watcher, atomic reloads, a lookup on a miss."""

    def __init__(
        self,
        keys: KeyStore,
        teams: TeamStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        miss_seconds: float = MISS_SECONDS,
        max_misses: int = MAX_MISSES,
    ) -> None:
        self.key_store = keys
        self.team_store = teams
        self.snapshot = Snapshot()
        self.clock = clock
        self.miss_seconds = miss_seconds
        self.max_misses = max_misses
        self._misses: dict[str, float] = {}  # key hash -> until when it is unknown
        self._asking: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._reload = asyncio.Lock()
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """A key or team changed somewhere (the store's notification): reload now."""
        self._changed.set()

    def key(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash, from memory only."""
        return self.snapshot.keys.get(key_hash)

    def team(self, name: str) -> TeamRecord | None:
        """The team record of that name (a key's team need not have one)."""
        return self.snapshot.teams.get(name)

    async def lookup(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash: from memory, else asked of the store once."""
        rec = self.snapshot.keys.get(key_hash)
        if rec is not None:
            return rec
        until = self._misses.get(key_hash)
        if until is not None and until > self.clock():
            return None
        asking = self._asking.get(key_hash)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(key_hash))
            self._asking[key_hash] = asking
        # Shielded: a caller that goes away must not cancel the others' lookup.
        return await asyncio.shield(asking)

    async def _ask(self, key_hash: str) -> KeyRecord | None:
        try:
            found = await self.key_store.find_by_hash(key_hash)
            if found is None:
                self._remember_miss(key_hash)
                return None
            # New since the last reload: load it together with its team.
            await self.refresh()
            return self.snapshot.keys.get(key_hash, found)
        except Exception:  # a busy database: refuse this once, do not remember it
            log.exception("could not look up a gateway key in the store")
            return None
        finally:
            self._asking.pop(key_hash, None)

    def _remember_miss(self, key_hash: str) -> None:
        now = self.clock()
        misses = self._misses
        # Every entry lives equally long, so insertion order is expiry order.
        while misses:
            oldest = next(iter(misses))
            if misses[oldest] > now and len(misses) < self.max_misses:
                break
            del misses[oldest]
        misses[key_hash] = now + self.miss_seconds

    async def refresh(self) -> bool:
        """Reload keys and teams if anything changed; True when it did."""
        async with self._reload:  # one reload at a time: an older one never wins
            gen = await self.key_store.generation()
            if gen == self.snapshot.generation:
                return False
            keys = await self.key_store.list_all()
            teams = await self.team_store.list_all()
            self.snapshot = Snapshot(
                gen,
                MappingProxyType({k.hash: k for k in keys}),
                MappingProxyType({t.name: t for t in teams}),
            )
            self._misses.clear()  # a key refused a moment ago may exist now
            return True

    async def watch(self) -> None:
        """Poll forever (run as a background task)."""
        failing = False  # one warning per outage, not one traceback per poll
        while True:
            # Woken at once by a change notification (PostgreSQL's LISTEN); the poll
            # covers stores that cannot announce changes and missed notifications.
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a
            # cancellation that lands as the event is set (a notification as the
            # gateway stops), and this loop then never ends, hanging the shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._changed.wait()
            self._changed.clear()
            try:
                if await self.refresh():
                    snap = self.snapshot
                    log.info(
                        "reloaded %d gateway keys and %d teams", len(snap.keys), len(snap.teams)
                    )
            except Exception as exc:  # a locked or busy database must not kill the watcher
                if not failing:
                    log.warning(
                        "could not reload gateway keys and teams (%s: %s); serving the ones "
                        "loaded before, retrying",
                        type(exc).__name__,
                        exc,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                failing = True
                continue
            if failing:
                log.warning("gateway keys and teams reloaded again")
                failing = False

    async def close(self) -> None:
        """Stop the lookups still running (shutdown)."""
        pending = list(self._asking.values())
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.wait(pending)
