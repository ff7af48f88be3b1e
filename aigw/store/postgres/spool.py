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
        if not self.spooled:
            try:
                async with asyncio.timeout(self.timeout):
                    await self.ledger.append_batch(batch_id, rows)
                return
            except UNAVAILABLE as exc:
                log.warning(
                    "PostgreSQL unreachable (%s); spooling the ledger to %s", exc, self.path
                )
        async with self._lock:
            await asyncio.to_thread(self._write, [encode(batch_id, rows)])
            self.spooled += 1
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
        returns how many batches are still spooled."""
        async with self._lock:
            lines = await asyncio.to_thread(self._read)
        done = 0
        try:
            for line in lines:
                batch_id, rows = decode(line)
                async with asyncio.timeout(self.timeout):
                    await self.ledger.append_batch(batch_id, rows, replay=True)
                done += 1
        except UNAVAILABLE:
            pass
        if done:
            async with self._lock:
                # Batches spooled while we replayed were appended after ours.
                current = await asyncio.to_thread(self._read)
                await asyncio.to_thread(self._rewrite, current[done:])
                self.spooled = len(current) - done
            self.replayed += done
            log.info("replayed %d spooled ledger batches into PostgreSQL", done)
        return self.spooled

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
