"""The connection owner: opens the SQLite file in WAL mode and applies migrations.

One aiosqlite connection writes; a second one reads, so a long report never
waits behind the ledger's group commits (WAL lets readers and a writer overlap).

The ledger's inserts are the one write on the request path. A hop to aiosqlite's
thread and back costs more CPU than the insert itself (about 300 us of wall time
across vCPUs against about 60 us for the insert), so with ``synchronous=NORMAL``
(no fsync per commit) they run directly on the event loop through a third, plain
connection that never waits for a lock: if another writer holds it, the insert
goes through the aiosqlite thread instead. That connection does not checkpoint the
WAL (a checkpoint may fsync); :meth:`Database.checkpoint` does, off the loop.

The writer connection is shared: :meth:`Database.transaction` spans several awaits,
and any statement another task sent to the same connection meanwhile would run
inside that transaction (and vanish with its rollback: a ledger row the client was
told is committed). So every use of the writer holds one lock. The fast connection
needs none: while a transaction holds SQLite's write lock it fails at once (busy)
and its statement waits for the lock, then runs on the writer. Another process (the
CLI while the server runs) has its own connections; SQLite's file lock and
``busy_timeout`` order those.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from aigw.errors import StoreError
from aigw.paths import private_dir, private_file
from aigw.store.sqlite.migrations import MIGRATIONS


class Database:
    """Owns the writer and reader connections of one state file."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        fast: sqlite3.Connection | None = None,
    ):
        self.path = path
        self.writer = writer
        self.reader = reader
        self.fast = fast
        # Held by every statement on ``writer`` (see the module docstring).
        self.write_lock = asyncio.Lock()

    async def close(self) -> None:
        if self.fast is not None:
            self.fast.close()
        await self.reader.close()
        await self.writer.close()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self.reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self.reader.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def fetchall_latest(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """A read that sees every commit so far, through the writer: the reader's
        snapshot may be an older one, held by another task's unfinished statement."""
        async with self.write_lock:
            return list(await self.writer.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement on the writer, atomically (autocommit); returns rows changed."""
        async with self.write_lock, self.writer.execute(sql, params) as cur:
            return cur.rowcount

    async def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One statement, atomically: on the loop if the lock is free, else in one hop
        to the writer's thread (the ledger's hot path)."""
        if self.fast is not None:
            try:
                self.fast.execute(sql, params)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
        async with self.write_lock:
            await self.writer.execute_fetchall(sql, params)

    async def write_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Statements in one transaction: on the loop if the lock is free, else through
        :meth:`transaction` (the ledger's batch with its rollups)."""
        fast = self.fast
        if fast is not None:
            try:
                fast.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            else:
                try:
                    for sql, params in statements:
                        fast.execute(sql, params)
                    fast.execute("COMMIT")
                except BaseException:
                    if fast.in_transaction:
                        fast.execute("ROLLBACK")
                    raise
                return
        await self.transaction(statements)

    async def checkpoint(self) -> None:
        """Move the WAL into the database file without blocking writers."""
        async with self.write_lock:
            await self.writer.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")

    async def transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run statements in one IMMEDIATE transaction; no other statement of this
        process joins it."""
        async with self.write_lock:
            await self.writer.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    await self.writer.execute(sql, params)
            except BaseException:
                await self.writer.execute("ROLLBACK")
                raise
            await self.writer.execute("COMMIT")


async def _connect(path: Path, synchronous: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=30000")
    return conn


async def _migrate(conn: aiosqlite.Connection, path: Path) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    async with conn.execute("SELECT name FROM _migrations") as cur:
        applied = {row[0] for row in await cur.fetchall()}
    known = {name for name, _ in MIGRATIONS}
    unknown = applied - known
    if unknown:
        raise StoreError(
            f"{path}: written by a newer aigw (unknown migrations: {', '.join(sorted(unknown))}); "
            "upgrade aigw to use it"
        )
    for name, sql in MIGRATIONS:
        if name in applied:
            continue
        # One transaction per migration: executescript would commit on its own, so
        # run the statements one by one inside BEGIN IMMEDIATE.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)) as cur:
                if await cur.fetchone() is not None:  # another process got there first
                    await conn.execute("ROLLBACK")
                    continue
            for statement in _split(sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


def _split(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ';' inside BEGIN...END)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _fast_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=0")  # never wait on the event loop
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


async def open_database(
    path: Path, *, synchronous: str = "normal", fast_writes: bool = False
) -> Database:
    """Open (creating if needed) and migrate the state file.

    ``fast_writes``: let :meth:`Database.write` run on the event loop (the server's
    ledger; only with ``synchronous="normal"``, where a commit does not fsync).
    """
    try:
        # Owner-only: SQLite gives the -wal and -shm files the database file's mode.
        private_dir(path.parent)
        private_file(path)
        writer = await _connect(path, synchronous)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{path}: cannot open the state database: {exc}") from exc
    try:
        await _migrate(writer, path)
        reader = await _connect(path, synchronous)
        fast = _fast_connection(path) if fast_writes and synchronous == "normal" else None
    except BaseException:
        await writer.close()
        raise
    return Database(path, writer, reader, fast)
