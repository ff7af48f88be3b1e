"""The ledger's local spool: group commits kept on disk while PostgreSQL is away.

A group commit that cannot reach PostgreSQL is appended to a local file (one JSON
line per batch, fsynced) and counts as committed: the request ends, nothing is lost.
While anything is spooled, new group commits go to the spool too (no request waits
on a connect timeout); a background task tries PostgreSQL every second and replays
the batches in order. Each batch keeps the id it was given first, and PostgreSQL
records the ids it committed (``ledger_batches``, for a week; then the batch's ledger
rows say so: see :mod:`.ledger`), so a batch whose commit reached the server but whose
answer did not is never counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from aigw.model import AuditBody, AuditEvent, LedgerRecord, LedgerRow
from aigw.paths import private_dir
from aigw.store.postgres.ledger import PgLedger

log = logging.getLogger("aigw.store.spool")

RETRY_SECONDS = 1.0
# Spooled batches committed per transaction while replaying: a replay of a long outage
# takes few round trips, and the tail replayed under the lock is one transaction.
REPLAY_CHUNK = 64
# Failures that mean "PostgreSQL is not reachable now", not "this batch is wrong".
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)
_KINDS: dict[str, type[Any]] = {"ledger": LedgerRow, "event": AuditEvent, "body": AuditBody}
_KIND_OF = {v: k for k, v in _KINDS.items()}


def encode(batch_id: str, rows: Sequence[LedgerRecord]) -> bytes:
    items = [[_KIND_OF[type(r)], asdict(r)] for r in rows]
    return orjson.dumps({"id": batch_id, "rows": items}) + b"\n"


def decode(line: bytes) -> tuple[str, list[LedgerRecord]]:
    doc = orjson.loads(line)
    return doc["id"], [_KINDS[kind](**fields) for kind, fields in doc["rows"]]


class SpoolingLedger:
    """:class:`~aigw.store.base.LedgerSink` over PostgreSQL with a local spool file."""

    def __init__(self, ledger: PgLedger, path: Path, *, timeout: float = 5.0) -> None:
        self.ledger = ledger
        self.path = path
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.spooled = self._count()
        self.replayed = 0

    def _count(self) -> int:
        try:
            with self.path.open("rb") as fh:
                return sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            return 0

    async def append_many(self, rows: Sequence[LedgerRecord]) -> None:
        batch_id = uuid.uuid4().hex
        tried = False
        while True:
            if not self.spooled and not tried:
                tried = True
                try:
                    async with asyncio.timeout(self.timeout):
                        await self.ledger.append_batch(batch_id, rows)
                    return
                except UNAVAILABLE as exc:
                    log.warning(
                        "PostgreSQL unreachable (%s); spooling the ledger to %s", exc, self.path
                    )
            async with self._lock:
                if self.spooled or tried:
                    await asyncio.to_thread(self._write, [encode(batch_id, rows)])
                    self.spooled += 1
                    break
            # The spool emptied while this waited for it: PostgreSQL is back.
        self._wake.set()

    def _write(self, lines: list[bytes]) -> None:
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read(self) -> list[bytes]:
        try:
            return [line for line in self.path.read_bytes().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def _rewrite(self, lines: list[bytes]) -> None:
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(line + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)

    async def replay(self) -> int:
        """Replay what is spooled, in order, until done or PostgreSQL fails again;
        returns how many batches are still spooled.

        Under load, batches keep arriving while it replays: it goes on until it has
        caught up, and replays the last few while holding the spool's lock, so the
        spool does become empty and group commits go straight to PostgreSQL again.
        """
        replayed = self.replayed
        reached = False  # PostgreSQL answered in this call: the tail may hold the lock
        try:
            while True:
                async with self._lock:
                    lines = await asyncio.to_thread(self._read)
                    if not lines or (reached and len(lines) <= REPLAY_CHUNK):
                        # The tail: group commits wait for it (one transaction).
                        await self._drop(await self._replay(lines))
                        return self.spooled
                done = await self._replay(lines)
                async with self._lock:
                    await self._drop(done)
                if done < len(lines):
                    return self.spooled  # PostgreSQL is away again
                reached = True
        finally:
            if self.replayed > replayed:
                log.info(
                    "replayed %d spooled ledger batches into PostgreSQL",
                    self.replayed - replayed,
                )

    async def _replay(self, lines: list[bytes]) -> int:
        """Commit ``lines`` in order, :data:`REPLAY_CHUNK` batches per transaction;
        how many were committed before PostgreSQL failed (all: ``len(lines)``)."""
        done = 0
        try:
            for start in range(0, len(lines), REPLAY_CHUNK):
                chunk = [decode(line) for line in lines[start : start + REPLAY_CHUNK]]
                async with asyncio.timeout(self.timeout):
                    await self.ledger.append_batches(chunk, replay=True)
                done += len(chunk)
        except UNAVAILABLE:
            pass
        return done

    async def _drop(self, done: int) -> None:
        """Remove the first ``done`` batches from the file (the lock is held). Batches
        spooled meanwhile were appended after them."""
        current = await asyncio.to_thread(self._read)
        if done:
            await asyncio.to_thread(self._rewrite, current[done:])
        self.spooled = len(current) - done
        self.replayed += done

    async def run(self) -> None:
        """Replay forever (a background task): at once when something is spooled,
        then every :data:`RETRY_SECONDS` until the spool is empty."""
        while True:
            if not self.spooled:
                await self._wake.wait()
            self._wake.clear()
            try:
                if await self.replay():
                    await asyncio.sleep(RETRY_SECONDS)
            except Exception:
                log.exception("replaying the ledger spool failed; will retry")
                await asyncio.sleep(RETRY_SECONDS)

    async def close(self) -> None:
        """One last replay at shutdown (what stays spooled replays at the next start)."""
        if self.spooled:
            await self.replay()
