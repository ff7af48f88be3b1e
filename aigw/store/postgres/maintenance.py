"""Keeping the PostgreSQL state healthy: what a prune would delete, `aigw ledger check`
and `aigw restore` (`aigw backup` is :func:`aigw.store.postgres.copy.backup`). Pruning
raw rows and rollups, and the ids of old group commits, is
:class:`~aigw.store.postgres.ledger.PgLedger`'s: the retention task shares it.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from aigw.errors import StoreError
from aigw.paths import private_file
from aigw.store.postgres.copy import Progress, Sized, replace_state, totals
from aigw.store.postgres.db import MIGRATION_LOCK, SERVING, PgDatabase, redact
from aigw.store.postgres.ledger import ts_bucket
from aigw.store.sqlite.db import open_database
from aigw.store.sqlite.maintenance import CheckResult, inspect, utc_minute
from aigw.store.sqlite.rollups import DAY, HOUR, KEY_COLUMNS, LATENCY_BOUNDS, SUM_COLUMNS, floor_to

# aigw's tables (migrations.py): their size is the state's size.
TABLES = (
    "_migrations",
    "keys",
    "teams",
    "generation",
    "ledger",
    "ledger_batches",
    "names",
    "rollup_hour",
    "rollup_day",
    "retention",
    "limit_counters",
    "budget_alerts",
    "response_cache",
    "cache_clears",
    "audit",
    "audit_head",
    "audit_bodies",
)


async def count_rows_before(db: PgDatabase, before: float) -> int:
    """Raw ledger rows of the whole hours before ``before`` (what a prune deletes)."""
    row = await db.fetchrow("SELECT COUNT(*) FROM ledger WHERE ts < $1", floor_to(before, HOUR))
    return int(row[0]) if row else 0


def _latency_sums() -> list[str]:
    out, low = [], None
    for b in LATENCY_BOUNDS:
        cond = (
            f"l.latency_ms <= {b}"
            if low is None
            else f"l.latency_ms > {low} AND l.latency_ms <= {b}"
        )
        out.append(f"COUNT(*) FILTER (WHERE {cond})")
        low = b
    out.append(f"COUNT(*) FILTER (WHERE l.latency_ms > {low})")
    return out


# Each SUM_COLUMNS value from raw ledger rows ``l`` (as sqlite.rollups.RAW_SUMS).
RAW_SUMS = (
    "COUNT(*)",
    "COUNT(*) FILTER (WHERE l.status >= 400)",
    "SUM(l.prompt_tokens)",
    "SUM(l.completion_tokens)",
    "SUM(l.cached_tokens)",
    "SUM(l.cache_write_tokens)",
    "SUM(l.reasoning_tokens)",
    "SUM(COALESCE(l.cost_nusd, 0))",
    "COUNT(*) FILTER (WHERE l.cost_nusd IS NULL)",
    "COUNT(*) FILTER (WHERE l.cache = 'hit')",
    "COUNT(*) FILTER (WHERE l.cache = 'miss')",
    "SUM(l.saved_nusd)",
    "COUNT(*) FILTER (WHERE l.stream <> 0)",
    "SUM(l.latency_ms)",
    *_latency_sums(),
)
assert len(RAW_SUMS) == len(SUM_COLUMNS)

_LEDGER_COLUMN = {"team": "team", "app": "app", "key": "key_id", "model": "model"}
_RAW_HOUR = (
    f"SELECT {ts_bucket(HOUR)}, "
    + ", ".join(
        f"COALESCE((SELECT id FROM names WHERE name = l.{_LEDGER_COLUMN.get(k, k)}), 0)"
        for k in KEY_COLUMNS
    )
    + f", l.status, {', '.join(RAW_SUMS)} FROM ledger l "
    "WHERE l.ts >= $1 AND l.ts < $2 GROUP BY 1, 2, 3, 4, 5, 6, 7"
)
_KEYS = ", ".join(KEY_COLUMNS)
_SUMS = ", ".join(SUM_COLUMNS)


def _keyed(rows: list[asyncpg.Record], width: int) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Rows as {key: sums}, every value an int (PostgreSQL's SUM is numeric)."""
    return {tuple(int(v) for v in r[:width]): tuple(int(v or 0) for v in r[width:]) for r in rows}


async def _sizes(conn: asyncpg.Connection) -> tuple[int, int]:
    """(aigw's tables with their indexes and TOAST, the whole database) in bytes."""
    row = await conn.fetchrow(
        "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(t))), 0), "
        "pg_database_size(current_database()) FROM unnest($1::text[]) AS t",
        list(TABLES),
    )
    assert row is not None
    return int(row[0]), int(row[1])


async def check(db: PgDatabase, *, sample_hours: int = 24, seed: int | None = None) -> CheckResult:
    """Rollups against raw rows for a sample of whole hours (and daily against hourly
    rollups for their days), the audit chain's head against its last event, sizes, row
    counts and requests per day; all read from one snapshot."""
    async with (
        db.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows: dict[str, int] = {}
        for table in ("ledger", "rollup_hour", "rollup_day", "names", "ledger_batches"):
            rows[table] = int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}"))
        rows_before = float(await conn.fetchval("SELECT rows_before FROM retention WHERE id = 1"))
        size, database = await _sizes(conn)
        result = CheckResult(
            None, size, None, rows, rows_before, 0, backend="postgresql", database_bytes=database
        )
        # Hours that still have all their raw rows: from the retention horizon on.
        hours = [
            int(r[0])
            for r in await conn.fetch(
                "SELECT DISTINCT bucket FROM rollup_hour WHERE bucket >= $1", rows_before
            )
        ]
        sample = sorted(random.Random(seed).sample(hours, min(sample_hours, len(hours))))
        for hour in sample:
            raw = _keyed(await conn.fetch(_RAW_HOUR, float(hour), float(hour + HOUR)), 7)
            rolled = _keyed(
                await conn.fetch(
                    f"SELECT bucket, {_KEYS}, status, {_SUMS} FROM rollup_hour WHERE bucket = $1",
                    hour,
                ),
                7,
            )
            if raw != rolled:
                result.mismatches.append(
                    f"hour {utc_minute(hour)}: rollup_hour differs from raw rows"
                )
        sums = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
        for day in sorted({floor_to(h, DAY) for h in sample}):
            from_hours = _keyed(
                await conn.fetch(
                    f"SELECT {_KEYS}, status, {sums} FROM rollup_hour "
                    f"WHERE bucket >= $1 AND bucket < $2 GROUP BY {_KEYS}, status",
                    day,
                    day + DAY,
                ),
                6,
            )
            daily = _keyed(
                await conn.fetch(
                    f"SELECT {_KEYS}, status, {_SUMS} FROM rollup_day WHERE bucket = $1", day
                ),
                6,
            )
            if from_hours != daily:
                result.mismatches.append(
                    f"day {utc_minute(day)[:10]}: rollup_day differs from rollup_hour"
                )
        result.hours_checked = len(sample)
        head = await conn.fetchrow(
            "SELECT h.seq, (SELECT MAX(seq) FROM audit) AS last FROM audit_head h WHERE h.id = 1"
        )
        if head is not None and head["last"] is not None and head["last"] != head["seq"]:
            result.mismatches.append(
                f"audit: the chain's head is at seq {head['seq']}, its last event at {head['last']}"
            )
        result.per_day = [
            (r[0], int(r[1]))
            for r in await conn.fetch(
                "SELECT to_char(to_timestamp(bucket) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
                "SUM(requests) FROM rollup_day WHERE bucket >= $1 GROUP BY bucket ORDER BY bucket",
                floor_to(time.time(), DAY) - 14 * DAY,
            )
        ]
    return result


def _working_copy(src: Path, into: Path) -> Path:
    """``src`` copied (through SQLite) into the private directory ``into``: opening it
    migrates it, and a backup file is never written to."""
    copy = into / "restore.db"
    private_file(copy)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return copy


async def restore(
    db: PgDatabase, src: Path, progress: Progress, sized: Sized | None = None
) -> dict[str, Any]:
    """Replace the database's aigw state with the backup ``src`` (a SQLite state file,
    checked first) in one transaction: all of it or nothing. Refuses while a serving
    gateway is connected; holds the migration lock, so none starts meanwhile."""
    info = inspect(src)
    with tempfile.TemporaryDirectory(prefix="aigw-restore-") as tmp:
        backup = await open_database(_working_copy(src, Path(tmp)))
        try:
            if sized is not None:
                sized(await totals(backup))
            async with db.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                serving = await conn.fetch(
                    "SELECT pid, client_addr, backend_start FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = $1 "
                    "AND pid <> pg_backend_pid()",
                    SERVING,
                )
                if serving:
                    where = sorted({str(r["client_addr"] or "local") for r in serving})
                    raise StoreError(
                        f"{redact(db.url)}: {len(serving)} connection(s) of a running aigw "
                        f"server (from {', '.join(where)}) use this database; stop the "
                        "gateways first (restore replaces the whole state)"
                    )
                copied = await replace_state(backup, conn, progress)
        finally:
            await backup.close()
    return {**info, "tables": copied.to_json()}
