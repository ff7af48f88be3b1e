"""Keeping the state file healthy over months: retention, integrity, backup, restore.

Pruning deletes in small batches, each its own short transaction, so the ledger's
group commits interleave with it. The retention horizon is recorded before rows go,
so a report never reads a half-pruned hour from raw rows (see
:func:`aigw.store.sqlite.rollups.segments`).

A serving process holds a shared ``flock`` on ``<state>-lock`` (with its pid in the
file); :func:`restore` takes it exclusively, so it refuses while a server runs and a
server cannot start while a restore writes.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigw.errors import StoreError
from aigw.paths import private_dir, private_file
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.migrations import MIGRATIONS
from aigw.store.sqlite.rollups import (
    DAY,
    HOUR,
    KEY_COLUMNS,
    LEDGER_COLUMN,
    RAW_SUMS,
    SUM_COLUMNS,
    US,
    bucket_sql,
    floor_to,
    us_bound,
)

PRUNE_BATCH = 2000  # rows per DELETE: a few milliseconds of the write lock


# -- retention -----------------------------------------------------------------------


async def count_rows_before(db: Database, before: float) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM ledger_rows WHERE id < ?", (us_bound(before),))
    return int(row[0]) if row else 0


async def prune_rows(db: Database, before: float, *, batch: int = PRUNE_BATCH) -> int:
    """Delete raw ledger rows of the whole hours before ``before`` (their totals stay in
    the rollups); returns how many. Small batches: writers are never blocked for long."""
    cut = floor_to(before, HOUR)
    await db.execute("UPDATE retention SET rows_before = MAX(rows_before, ?) WHERE id = 1", (cut,))
    deleted = 0
    while True:
        n = await db.execute(
            "DELETE FROM ledger_rows WHERE id IN "
            "(SELECT id FROM ledger_rows WHERE id < ? ORDER BY id LIMIT ?)",
            (cut * US, batch),
        )
        deleted += n
        if n < batch:
            return deleted


async def prune_rollups(db: Database, before: float, *, batch: int = PRUNE_BATCH) -> int:
    """Delete rollups of the whole days before ``before`` (and any raw rows there)."""
    cut = floor_to(before, DAY)
    deleted = await prune_rows(db, cut, batch=batch)
    await db.execute(
        "UPDATE retention SET rollups_before = MAX(rollups_before, ?) WHERE id = 1", (cut,)
    )
    for table in ("rollup_hour", "rollup_day"):  # a day per DELETE: short transactions
        while True:
            row = await db.fetchone(f"SELECT MIN(bucket) FROM {table}")
            if row is None or row[0] is None or row[0] >= cut:
                break
            deleted += await db.execute(
                f"DELETE FROM {table} WHERE bucket < ?", (min(cut, floor_to(row[0], DAY) + DAY),)
            )
    return deleted


# -- integrity -----------------------------------------------------------------------


@dataclass(slots=True)
class CheckResult:
    """What `aigw ledger check` found, on either backend (None: does not apply)."""

    quick_check: list[str] | None  # SQLite's PRAGMA quick_check
    file_bytes: int  # SQLite: the file; PostgreSQL: aigw's tables with their indexes
    wal_bytes: int | None  # SQLite's WAL file
    rows: dict[str, int]
    rows_before: float
    hours_checked: int
    mismatches: list[str] = field(default_factory=list)
    per_day: list[tuple[str, int]] = field(default_factory=list)  # (UTC day, requests)
    backend: str = "sqlite"
    database_bytes: int | None = None  # PostgreSQL: the whole database

    @property
    def ok(self) -> bool:
        return self.quick_check in (None, ["ok"]) and not self.mismatches


_ROLLUP_KEY = f"bucket, {', '.join(KEY_COLUMNS)}, status"


def _raw_hour_sql() -> str:
    # The view for the sums, the table's names ids for the rollup keys.
    keys = ", ".join(f"IFNULL(c.{LEDGER_COLUMN[k]}, 0)" for k in KEY_COLUMNS)
    return (
        f"SELECT {bucket_sql(HOUR)}, {keys}, l.status, {', '.join(RAW_SUMS)} "
        "FROM ledger l JOIN ledger_rows c ON c.id = l.id "
        "WHERE l.id >= ? AND l.id < ? GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )


async def check(db: Database, *, sample_hours: int = 24, seed: int | None = None) -> CheckResult:
    """``PRAGMA quick_check``, rollups against raw rows for a sample of whole hours (and
    daily against hourly rollups for their days), sizes, row counts, requests per day."""
    quick = [r[0] for r in await db.fetchall("PRAGMA quick_check")]
    rows = {}
    for table in ("ledger_rows", "rollup_hour", "rollup_day", "names"):
        row = await db.fetchone(f"SELECT COUNT(*) FROM {table}")
        rows["ledger" if table == "ledger_rows" else table] = int(row[0]) if row else 0
    ret = await db.fetchone("SELECT rows_before FROM retention WHERE id = 1")
    rows_before = float(ret[0]) if ret else 0.0
    size, wal = _sizes(db.path)
    result = CheckResult(quick, size, wal, rows, rows_before, 0)
    # Hours that still have all their raw rows: from the first whole hour after the
    # retention horizon.
    hours = [
        int(r[0])
        for r in await db.fetchall(
            "SELECT DISTINCT bucket FROM rollup_hour WHERE bucket >= ?", (rows_before,)
        )
    ]
    rnd = random.Random(seed)
    sample = sorted(rnd.sample(hours, min(sample_hours, len(hours))))
    cols = ", ".join(SUM_COLUMNS)
    for hour in sample:
        raw = {
            tuple(r[:7]): tuple(r[7:])
            for r in await db.fetchall(_raw_hour_sql(), (hour * US, (hour + HOUR) * US))
        }
        rolled = {
            tuple(r[:7]): tuple(r[7:])
            for r in await db.fetchall(
                f"SELECT {_ROLLUP_KEY}, {cols} FROM rollup_hour WHERE bucket = ?", (hour,)
            )
        }
        if raw != rolled:
            result.mismatches.append(f"hour {utc_minute(hour)}: rollup_hour differs from raw rows")
    for day in sorted({floor_to(h, DAY) for h in sample}):
        sums = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
        from_hours = {
            tuple(r[:6]): tuple(r[6:])
            for r in await db.fetchall(
                f"SELECT {', '.join(KEY_COLUMNS)}, status, {sums} FROM rollup_hour "
                f"WHERE bucket >= ? AND bucket < ? GROUP BY {', '.join(KEY_COLUMNS)}, status",
                (day, day + DAY),
            )
        }
        daily = {
            tuple(r[:6]): tuple(r[6:])
            for r in await db.fetchall(
                f"SELECT {', '.join(KEY_COLUMNS)}, status, {cols} FROM rollup_day WHERE bucket = ?",
                (day,),
            )
        }
        if from_hours != daily:
            result.mismatches.append(
                f"day {utc_minute(day)[:10]}: rollup_day differs from rollup_hour"
            )
    result.hours_checked = len(sample)
    result.per_day = [
        (r[0], int(r[1]))
        for r in await db.fetchall(
            "SELECT date(bucket, 'unixepoch'), SUM(requests) FROM rollup_day "
            "WHERE bucket >= ? GROUP BY bucket ORDER BY bucket",
            (floor_to(time.time(), DAY) - 14 * DAY,),
        )
    ]
    return result


def _sizes(path: Path) -> tuple[int, int]:
    """(database file bytes, WAL bytes)."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def utc_minute(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ts))


# -- the serving lock ----------------------------------------------------------------


def lock_path(state: Path) -> Path:
    return Path(f"{state}-lock")


class ServingLock:
    """A shared lock a serving process holds on ``<state>-lock`` while it runs."""

    def __init__(self, state: Path) -> None:
        self.path = lock_path(state)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX (Windows): no lock, restore cannot check
            return
        private_dir(self.path.parent)
        private_file(self.path)
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"{self.path.with_name(self.path.name[:-5])}: a restore is writing this "
                "state file; start the server when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


@contextlib.contextmanager
def exclusive(state: Path) -> Iterator[None]:
    """Hold ``<state>-lock`` exclusively; StoreError when a server holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): nothing to check against
        yield
        return
    path = lock_path(state)
    private_dir(path.parent)
    private_file(path)
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StoreError(
                f"{state}: a running aigw server (pid {pid}) is using this state file; "
                "stop it first (restore replaces the whole file)"
            ) from None
        yield
    finally:
        os.close(fd)


# -- backup and restore --------------------------------------------------------------


def backup(state: Path, dest: Path, progress: Callable[[int, int], None] | None = None) -> int:
    """Copy the live state file to ``dest`` consistently (``VACUUM INTO``: one read
    transaction, writers are not blocked); returns the size written. ``progress(done,
    total)`` is called with bytes as the copy grows."""
    if dest.exists():
        raise StoreError(f"{dest}: already exists; choose a new file name")
    if not state.exists():
        raise StoreError(f"{state}: no state file to back up")
    private_file(dest)  # owner-only from the start; VACUUM INTO accepts an empty file
    conn = sqlite3.connect(state, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        pages, free, page_size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
        total = max(1, (pages - free) * page_size)
        error: list[BaseException] = []

        def run() -> None:
            try:
                conn.execute("VACUUM INTO ?", (str(dest),))
            except BaseException as exc:  # reported by the caller's thread
                error.append(exc)

        worker = threading.Thread(target=run, name="aigw-backup")
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            if progress is not None and dest.exists():
                progress(min(dest.stat().st_size, total), total)
        if error:
            dest.unlink(missing_ok=True)
            raise StoreError(f"{dest}: backup failed: {error[0]}") from error[0]
    finally:
        conn.close()
    size = dest.stat().st_size
    if progress is not None:
        progress(size, size)
    return size


def inspect(path: Path) -> dict[str, Any]:
    """What a backup file holds (quick_check, migrations, ledger rows); StoreError when
    it is not an aigw state file this version can use."""
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            quick = [r[0] for r in conn.execute("PRAGMA quick_check")]
            applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
            rows = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: not an aigw state file ({exc})") from exc
    if quick != ["ok"]:
        raise StoreError(f"{path}: damaged: {'; '.join(quick[:3])}")
    unknown = applied - {name for name, _ in MIGRATIONS}
    if unknown:
        raise StoreError(f"{path}: written by a newer aigw ({', '.join(sorted(unknown))})")
    return {"ledger_rows": rows, "migrations": len(applied)}


def restore(src: Path, state: Path) -> dict[str, Any]:
    """Replace the state file with the backup ``src`` (checked first); refuses while a
    server holds the state. The old file's WAL and shared memory go with it."""
    info = inspect(src)
    with exclusive(state):
        state.parent.mkdir(parents=True, exist_ok=True)
        private_file(state)
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        target = sqlite3.connect(state, isolation_level=None)
        try:
            target.execute("PRAGMA busy_timeout=30000")
            source.backup(target)  # page by page through SQLite: WAL and locks handled
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            source.close()
            target.close()
    return info
