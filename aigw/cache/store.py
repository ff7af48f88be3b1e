"""Cached answers: an in-memory LRU front over the state file's ``response_cache``.

A lookup tries memory first (no await, no SQLite); only on a miss there does it read
the table (one read on the reader connection). Answers are written to the table in
batches by one background task, so storing one never delays an answer, and the same
task notes when answers were last served, evicts the least recently used when the
table outgrows ``max_size``, deletes expired ones, and notices `aigw cache clear`
run from another process.

A failing or corrupt table never fails a request: the error is logged (once per
minute at most), the lookup counts as a bypass and the call goes upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from aigw.cache.entry import Entry
from aigw.store.base import CacheTable

log = logging.getLogger("aigw.cache")

FRONT_MAX = 64 << 20  # the most bytes of answers held in memory
FLUSH_SECONDS = 1.0  # writes, touches, and polling `aigw cache clear`
PURGE_SECONDS = 60.0  # deleting expired answers from the table
_LOG_EVERY = 60.0

HIT, MISS, BYPASS = "hit", "miss", "bypass"


class ResponseCache:
    """Get and put answers by key; see the module docstring."""

    def __init__(
        self,
        table: CacheTable | None,
        max_size: int,
        *,
        clock: Callable[[], float] = time.time,
        front_max: int = FRONT_MAX,
    ) -> None:
        self.table = table
        self.max_size = max_size
        self.clock = clock
        self.front: OrderedDict[str, Entry] = OrderedDict()
        self.front_bytes = 0
        self.front_max = min(front_max, max_size)
        self.disk_bytes = 0
        self._pending: dict[str, Entry] = {}
        self._touched: dict[str, float] = {}
        self._doomed: list[str] = []  # corrupt rows to delete
        self._wake = asyncio.Event()
        # One flush at a time: a flush returns only when what was queued before it is
        # in the table, including a batch another flush (run's) is still writing.
        self._flushing = asyncio.Lock()
        self._closing = False
        self._last_clear = 0
        self._purged = 0.0
        self._logged = -_LOG_EVERY
        self.errors = 0

    # -- the request path ------------------------------------------------------------

    async def get(self, key: str) -> tuple[str, Entry | None]:
        """(hit, entry), (miss, None), or (bypass, None) when the table failed."""
        now = self.clock()
        entry = self.front.get(key)
        if entry is not None:
            if entry.expires > now:
                self.front.move_to_end(key)
                entry.last_used = now
                self._touched[key] = now
                return HIT, entry
            self._drop(key)
            return MISS, None
        if self.table is None:
            return MISS, None
        try:
            entry = await self.table.get(key)
        except Exception:
            self._failed("reading an answer")
            return BYPASS, None
        if entry is None or entry.expires <= now:
            return MISS, None
        entry.last_used = now
        self._touched[key] = now
        self._remember(entry)
        return HIT, entry

    def put(self, entry: Entry) -> bool:
        """Keep ``entry`` (in memory now, in the table with the next batch); False if it
        is larger than the whole cache."""
        if entry.size > self.max_size or self._closing:
            return False
        self._remember(entry)
        if self.table is not None:
            self._pending[entry.key] = entry
            self._wake.set()
        return True

    def discard(self, key: str) -> None:
        """Forget an answer that could not be replayed (a corrupt row)."""
        self._drop(key)
        self._pending.pop(key, None)
        if self.table is not None:
            self._doomed.append(key)
            self._wake.set()

    def _remember(self, entry: Entry) -> None:
        old = self.front.pop(entry.key, None)
        if old is not None:
            self.front_bytes -= old.size
        self.front[entry.key] = entry
        self.front_bytes += entry.size
        while self.front_bytes > self.front_max and self.front:
            _, gone = self.front.popitem(last=False)
            self.front_bytes -= gone.size

    def _drop(self, key: str) -> None:
        gone = self.front.pop(key, None)
        if gone is not None:
            self.front_bytes -= gone.size

    def drop_matching(self, team: str | None, model: str | None) -> None:
        """Forget in memory what `aigw cache clear` deleted from the table."""
        for key, e in list(self.front.items()):
            if (team is None or e.team == team) and (model is None or e.model == model):
                self._drop(key)

    def _failed(self, what: str) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY:
            self._logged = now
            log.warning(
                "response cache: %s failed; calls bypass the cache meanwhile", what, exc_info=True
            )

    # -- the background task ---------------------------------------------------------

    async def start(self) -> None:
        if self.table is None:
            return
        try:
            self.disk_bytes = await self.table.total_size()
            self._last_clear = await self.table.last_clear()
        except Exception:
            self._failed("opening the cache table")

    async def run(self) -> None:
        """Write batches until :meth:`close`; then write what is left and return."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
            if self._closing:
                return

    async def flush(self) -> None:
        """Write what is queued (answers, touches, deletions); evict and purge."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        db = self.table
        if db is None:
            return
        entries, self._pending = list(self._pending.values()), {}
        touched, self._touched = self._touched, {}
        doomed, self._doomed = self._doomed, []
        try:
            if doomed:
                await db.delete(doomed)
            if entries or touched:
                await db.put_many(entries, [(t, k) for k, t in touched.items()])
                self.disk_bytes += sum(e.size for e in entries)
            if self.disk_bytes > self.max_size:
                # Down to 90%, so eviction runs once per many puts, not once per put.
                self.disk_bytes, gone = await db.evict(self.max_size * 9 // 10)
                for key in gone:
                    self._drop(key)
            now = self.clock()
            if now - self._purged >= PURGE_SECONDS:
                self._purged = now
                if await db.purge_expired(now):
                    self.disk_bytes = await db.total_size()
            # Only what memory holds can be stale: the table itself was cleared.
            if self.front:
                for clear_id, team, model in await db.clears_since(self._last_clear):
                    self._last_clear = clear_id
                    self.drop_matching(team, model)
                    self.disk_bytes = await db.total_size()
        except Exception:
            self._failed("writing answers")

    def close(self) -> None:
        """Stop taking answers; run() writes what is queued, then returns."""
        self._closing = True
        self._wake.set()


CACHE = web.AppKey("response_cache", ResponseCache)
