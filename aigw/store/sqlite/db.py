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
:meth:`Database.batch` is the same idea for a whole transaction (a group commit's
ledger rows, audit events and the audit chain's head): on the loop when the lock
is free, else in a worker thread on a fourth connection that waits for it.

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
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

import aigw.store.sqlite.binds  # noqa: F401 (sqlite3's adapters for None and bytes)
from aigw.audit import Sealer
from aigw.errors import StoreError
from aigw.paths import private_dir, private_file
from aigw.store.sqlite.audit_codec import SQL_FUNCTIONS
from aigw.store.sqlite.migrations import MIGRATIONS


class Database:
    """Owns the writer and reader connections of one state file."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        fast: sqlite3.Connection | None = None,
        synchronous: str = "normal",
    ):
        self.path = path
        self.writer = writer
        self.reader = reader
        self.fast = fast
        self.synchronous = synchronous
        # Held by every statement on ``writer`` (see the module docstring).
        self.write_lock = asyncio.Lock()
        # Seals the audit events written through this database (aigw.audit).
        self.sealer = Sealer()
        self._blocking: sqlite3.Connection | None = None

    async def close(self) -> None:
        if self.fast is not None:
            self.fast.close()
        if self._blocking is not None:
            self._blocking.close()
        await self.reader.close()
        await self.writer.close()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self.reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self.reader.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Reads inside the block see one state of the file (a WAL read transaction),
        whatever another process commits meanwhile. For one-shot readers (the CLI): the
        reader connection is shared."""
        await self.reader.execute("BEGIN")
        try:
            yield
        finally:
            await self.reader.execute("COMMIT")

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

    async def batch(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``work(conn)`` in one IMMEDIATE transaction: all of it or none (then raise).

        On the event loop through the fast connection when SQLite's write lock is free
        (the group commit of ledger rows and audit events: no thread hop); otherwise in
        a worker thread on a connection that waits for the lock.
        """
        fast = self.fast
        if fast is not None:
            # No need to look at write_lock: whatever holds SQLite's write lock (a
            # transaction of the writer, the fallback below) makes BEGIN fail at once.
            try:
                fast.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            else:
                _finish(fast, work)
                return
        async with self.write_lock:
            conn = self._blocking_connection()
            await asyncio.to_thread(_transaction, conn, work)

    def _blocking_connection(self) -> sqlite3.Connection:
        if self._blocking is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.row_factory = sqlite3.Row
            sync = "FULL" if self.synchronous == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            conn.execute("PRAGMA busy_timeout=30000")
            self._blocking = conn
        return self._blocking

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


def _transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], None]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    _finish(conn, work)


def _finish(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], None]) -> None:
    """Run ``work`` inside the transaction just begun, then commit (or roll back)."""
    try:
        work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


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
    if known - applied:  # functions some migrations convert old rows with
        for fname, (nargs, fn) in SQL_FUNCTIONS.items():
            await conn.create_function(fname, nargs, fn, deterministic=True)
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
    conn.row_factory = sqlite3.Row
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
    return Database(path, writer, reader, fast, synchronous)
