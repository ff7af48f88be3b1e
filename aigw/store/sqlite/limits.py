"""Limits columns of teams and keys, and the SQL behind the limits engine's state.

The engine itself (``aigw.limits``, ``aigw.pipeline.admit``) keeps everything in
memory and uses the functions here only at start, in its batched background writes
and at shutdown.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import aigw.store.sqlite.ledger as ledger_sql
from aigw.model import LIMIT_FIELDS, NO_LIMITS, AlertRow, Limits, SpendRow
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import name_of, segments, union_sql

# The SQL column list, shared by the keys and teams tables.
COLUMNS = ", ".join(LIMIT_FIELDS)


def to_row(limits: Limits) -> tuple[object, ...]:
    """Column values in :data:`LIMIT_FIELDS` order."""
    return (
        limits.rpm,
        limits.tpm,
        limits.max_parallel,
        limits.budget_nusd,
        limits.period,
        None if limits.alert_at is None else ",".join(str(p) for p in limits.alert_at),
        limits.priority,
        None if limits.models is None else ",".join(limits.models),
        None if limits.regions is None else ",".join(limits.regions),
        limits.cache,
        limits.cache_ttl,
        None if limits.scrub is None else ",".join(f"{d}={a}" for d, a in limits.scrub),
    )


def from_row(row: sqlite3.Row) -> Limits:
    if all(row[name] is None for name in LIMIT_FIELDS):
        return NO_LIMITS  # shared, so the hot path can test it by identity
    alert_at = row["alert_at"]
    models = row["models"]
    regions = row["regions"]
    scrub = row["scrub"]
    return Limits(
        rpm=row["rpm"],
        tpm=row["tpm"],
        max_parallel=row["max_parallel"],
        budget_nusd=row["budget_nusd"],
        period=row["period"],
        alert_at=None
        if alert_at is None
        else tuple(int(p) for p in alert_at.split(",") if p.strip()),
        priority=row["priority"],
        models=None if models is None else tuple(m for m in models.split(",") if m),
        regions=None if regions is None else tuple(r for r in regions.split(",") if r),
        cache=row["cache"],
        cache_ttl=row["cache_ttl"],
        scrub=None
        if scrub is None
        else tuple((d, a) for d, _, a in (p.partition("=") for p in scrub.split(",") if p) if a),
    )


# -- rate-limit counters -------------------------------------------------------------


async def load_counters(db: Database, now: float) -> dict[str, tuple[float, float]]:
    """bucket id -> (tat, interval) of buckets not yet full again at ``now``."""
    rows = await db.fetchall(
        "SELECT bucket, tat, interval FROM limit_counters WHERE tat > ?", (now,)
    )
    return {r["bucket"]: (r["tat"], r["interval"]) for r in rows}


# SQLite allows 32766 bound variables per statement; stay far below it.
_CHUNK = 500


async def save_counters(
    db: Database, busy: Sequence[tuple[str, float, float]], idle: Sequence[str]
) -> None:
    """Write ``busy`` buckets (id, tat, interval) and forget ``idle`` ones.

    Single autocommit statements, not one transaction: each holds the writer only
    briefly, so the ledger's group commits (which may need the writer when the fast
    connection is busy) never wait behind a whole batch of counters.
    """
    for i in range(0, len(busy), _CHUNK):
        chunk = busy[i : i + _CHUNK]
        await db.execute(
            "INSERT INTO limit_counters (bucket, tat, interval) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(chunk))
            + " ON CONFLICT (bucket) DO UPDATE SET tat = excluded.tat, "
            "interval = excluded.interval",
            [v for row in chunk for v in row],
        )
    for i in range(0, len(idle), _CHUNK):
        ids = idle[i : i + _CHUNK]
        await db.execute(
            f"DELETE FROM limit_counters WHERE bucket IN ({', '.join('?' * len(ids))})", ids
        )


# -- budget alerts -------------------------------------------------------------------


_ALERT_COLUMNS = "scope, name, period, mark, fired_at, spent_nusd, budget_nusd"


async def save_alerts(db: Database, alerts: Sequence[AlertRow]) -> None:
    """Remember fired alerts (one autocommit statement per chunk; duplicates ignored)."""
    for i in range(0, len(alerts), _CHUNK):
        chunk = alerts[i : i + _CHUNK]
        await db.execute(
            f"INSERT OR IGNORE INTO budget_alerts ({_ALERT_COLUMNS}) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
            [
                v
                for a in chunk
                for v in (
                    a.scope,
                    a.name,
                    a.period,
                    a.mark,
                    a.fired_at,
                    a.spent_nusd,
                    a.budget_nusd,
                )
            ],
        )


async def load_alerts(db: Database, periods: Sequence[str]) -> list[AlertRow]:
    """Alerts fired in any of ``periods`` (period ids such as 'month:2026-11-01')."""
    if not periods:
        return []
    marks = ", ".join("?" * len(periods))
    rows = await db.fetchall(
        f"SELECT {_ALERT_COLUMNS} FROM budget_alerts WHERE period IN ({marks})", list(periods)
    )
    return [AlertRow(**dict(r)) for r in rows]


async def alert_history(db: Database, scope: str, name: str, period: str) -> list[AlertRow]:
    """The alerts one team or key fired in one period, oldest first."""
    rows = await db.fetchall(
        f"SELECT {_ALERT_COLUMNS} FROM budget_alerts WHERE scope = ? AND name = ? "
        "AND period = ? ORDER BY fired_at",
        (scope, name, period),
    )
    return [AlertRow(**dict(r)) for r in rows]


# -- spend ---------------------------------------------------------------------------


async def spend_between(
    db: Database, start: float, end: float, *, raw: bool = False
) -> list[SpendRow]:
    """Ledger cost (and unpriced answered calls) per (team, key) of calls that started
    in [start, end): rollups for whole hours and days, raw rows for the edges."""
    segs = (
        [("raw", start, end)]
        if raw
        else segments(start, end, pruned_before=await ledger_sql.pruned_before(db))
    )
    if not segs:
        return []
    union, params = union_sql(
        segs,
        raw_select="l.team, l.key_id, SUM(IFNULL(l.cost_nusd, 0)), "
        "SUM(l.cost_nusd IS NULL AND l.status < 400)",
        roll_select=f"{name_of('team')}, {name_of('key')}, SUM(r.cost_nusd), "
        "SUM(CASE WHEN r.status < 400 THEN r.unpriced ELSE 0 END)",
        group="1, 2",
        roll_group="r.team, r.key",
    )
    rows = await db.fetchall(
        "SELECT team, key_id, SUM(cost) AS cost, SUM(unpriced) AS unpriced FROM "
        f"(SELECT NULL AS team, NULL AS key_id, 0 AS cost, 0 AS unpriced WHERE 0 "
        f"UNION ALL {union}) GROUP BY team, key_id",
        params,
    )
    return [SpendRow(r["team"], r["key_id"], r["cost"], r["unpriced"]) for r in rows]


async def spend_of(
    db: Database, scope: str, name: str, start: float, end: float
) -> tuple[int, int]:
    """(cost nano-USD, unpriced calls) of one team or key in [start, end)."""
    segs = segments(start, end, pruned_before=await ledger_sql.pruned_before(db))
    if not segs:
        return (0, 0)
    column = "team" if scope == "team" else "key_id"
    roll = "team" if scope == "team" else "key"
    union, params = union_sql(
        segs,
        raw_select="SUM(IFNULL(l.cost_nusd, 0)), SUM(l.cost_nusd IS NULL AND l.status < 400)",
        roll_select="SUM(r.cost_nusd), SUM(CASE WHEN r.status < 400 THEN r.unpriced ELSE 0 END)",
        raw_where=f"l.{column} = ?",
        roll_where=f"r.{roll} = (SELECT id FROM names WHERE name = ?)",
        params_raw=(name,),
        params_roll=(name,),
    )
    row = await db.fetchone(
        "SELECT SUM(cost), SUM(unpriced) FROM (SELECT 0 AS cost, 0 AS unpriced WHERE 0 "
        f"UNION ALL {union})",
        params,
    )
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)
