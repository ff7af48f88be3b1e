"""The cost ledger: one row per call, appended in group commits (with the audit trail)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import fields
from operator import attrgetter

from aigw.model import REPORT_GROUPS, AuditBody, AuditEvent, LedgerRecord, LedgerRow, ReportRow
from aigw.store.sqlite.audit import append_audit
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import (
    DAY,
    Interned,
    add_rollups,
    bucket_sql,
    name_of,
    segments,
    union_sql,
)

_NAMES = [f.name for f in fields(LedgerRow)]
_ROW_SQL = "(" + ", ".join("?" * len(_NAMES)) + ")"
_VALUES = attrgetter(*_NAMES)  # a row's values in column order (astuple deep-copies: slow)
# SQLite allows 32766 bound variables per statement; stay far below it.
MAX_BATCH = 500


def insert_rows(conn: sqlite3.Connection, rows: Sequence[LedgerRow]) -> None:
    """Multi-row INSERTs of ``rows`` into the ledger (rollups not included)."""
    for start in range(0, len(rows), MAX_BATCH):
        chunk = rows[start : start + MAX_BATCH]
        sql = f"INSERT INTO ledger ({', '.join(_NAMES)}) VALUES " + ", ".join(
            [_ROW_SQL] * len(chunk)
        )
        params: list[object] = []
        for row in chunk:
            params.extend(_VALUES(row))
        conn.execute(sql, params)


async def append_many(db: Database, rows: Sequence[LedgerRecord]) -> None:
    """Commit a group: ledger rows (multi-row INSERTs), their rollups, and the audit
    events and bodies that came with them, in one transaction, one commit."""
    ledger = [r for r in rows if type(r) is LedgerRow]
    events = [r for r in rows if type(r) is AuditEvent]
    bodies = [r for r in rows if type(r) is AuditBody]
    interned = Interned(db)

    def write(conn: sqlite3.Connection) -> None:
        insert_rows(conn, ledger)
        add_rollups(conn, ledger, interned)
        append_audit(conn, events, db.sealer, bodies)

    await db.batch(write)
    interned.committed()


# The SQL of each of REPORT_GROUPS: over raw rows ``l``, over rollups ``r``.
_GROUPS = {
    "team": "COALESCE(l.team, '-')",
    "app": "COALESCE(l.app, '-')",
    "key": "COALESCE(l.key_id, '-')",
    "model": "COALESCE(l.model, '-')",
    "provider": "COALESCE(l.provider, '-')",
    # The UTC day whose [midnight, midnight) holds ts (date() rounds to milliseconds).
    "day": f"date({bucket_sql(DAY)}, 'unixepoch')",
}
# (expression, GROUP BY): grouped by the id, the name looked up once per group.
_ROLL_GROUPS = {
    "team": (f"COALESCE({name_of('team')}, '-')", "r.team"),
    "app": (f"COALESCE({name_of('app')}, '-')", "r.app"),
    "key": (f"COALESCE({name_of('key')}, '-')", "r.key"),
    "model": (f"COALESCE({name_of('model')}, '-')", "r.model"),
    "provider": (f"COALESCE({name_of('provider')}, '-')", "r.provider"),
    "day": ("date(r.bucket, 'unixepoch')", "r.bucket"),
}
assert tuple(_GROUPS) == REPORT_GROUPS == tuple(_ROLL_GROUPS)
_REPORT_RAW = (
    "COUNT(*), SUM(l.status >= 400), SUM(l.prompt_tokens), SUM(l.completion_tokens), "
    "SUM(IFNULL(l.cost_nusd, 0)), SUM(l.cost_nusd IS NULL), SUM(l.cache IS 'hit'), "
    "SUM(l.cache IS 'miss'), SUM(l.saved_nusd)"
)
_REPORT_ROLL = (
    "SUM(r.requests), SUM(r.errors), SUM(r.prompt_tokens), SUM(r.completion_tokens), "
    "SUM(r.cost_nusd), SUM(r.unpriced), SUM(r.cache_hits), SUM(r.cache_misses), "
    "SUM(r.saved_nusd)"
)
_REPORT_COLS = (
    "requests, errors, prompt_tokens, completion_tokens, cost, unpriced, hits, misses, saved"
)


async def pruned_before(db: Database) -> float:
    """Raw rows before this time were pruned (0: none were)."""
    row = await db.fetchone("SELECT rows_before FROM retention WHERE id = 1")
    return float(row[0]) if row else 0.0


async def summarize(
    db: Database, *, by: str, since: float | None, until: float | None, raw: bool = False
) -> list[ReportRow]:
    """Totals per group. Costs are summed as integers, so they add up exactly.

    Whole hours and days come from the rollups, the ragged edges from raw rows;
    ``raw=True`` sums raw rows only (what the rollups must agree with).
    """
    segs = (
        [("raw", -math.inf if since is None else since, math.inf if until is None else until)]
        if raw
        else segments(since, until, pruned_before=await pruned_before(db))
    )
    if not segs:
        return []
    union, params = union_sql(
        segs,
        raw_select=f"{_GROUPS[by]}, {_REPORT_RAW}",
        roll_select=f"{_ROLL_GROUPS[by][0]}, {_REPORT_ROLL}",
        group="1",
        roll_group=_ROLL_GROUPS[by][1],
    )
    order = "name" if by == "day" else "cost DESC, requests DESC, name"
    sql = f"""
        SELECT name, SUM(requests) AS requests, SUM(errors) AS errors,
               SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
               SUM(cost) AS cost, SUM(unpriced) AS unpriced, SUM(hits) AS hits,
               SUM(misses) AS misses, SUM(saved) AS saved
        FROM (SELECT NULL AS name, 0 AS {" , 0 AS ".join(_REPORT_COLS.split(", "))} WHERE 0
              UNION ALL {union})
        GROUP BY name HAVING SUM(requests) > 0 ORDER BY {order}
    """
    rows = await db.fetchall(sql, params)
    return [
        ReportRow(
            r["name"],
            r["requests"],
            r["errors"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["cost"],
            r["unpriced"],
            r["hits"],
            r["misses"],
            r["saved"],
        )
        for r in rows
    ]


async def by_request_id(db: Database, request_id: str) -> list[LedgerRow]:
    rows = await db.fetchall(
        f"SELECT {', '.join(_NAMES)} FROM ledger WHERE request_id = ?", (request_id,)
    )
    return [
        LedgerRow(
            **{
                **dict(r),
                "stream": bool(r["stream"]),
                "usage_estimated": bool(r["usage_estimated"]),
            }
        )
        for r in rows
    ]


async def request_ids(db: Database) -> set[str]:
    rows = await db.fetchall("SELECT request_id FROM ledger")
    return {r[0] for r in rows}


async def unpriced_models(db: Database, since: float | None) -> list[tuple[str, str, int]]:
    """(provider, upstream model, calls) of answered calls that had no price, most first."""
    rows = await db.fetchall(
        "SELECT provider, upstream_model, COUNT(*) AS n FROM ledger "
        "WHERE cost_nusd IS NULL AND status < 400 AND provider IS NOT NULL "
        "AND upstream_model IS NOT NULL AND ts >= ? "
        "GROUP BY provider, upstream_model ORDER BY n DESC, provider, upstream_model",
        [since if since is not None else float("-inf")],
    )
    return [(r["provider"], r["upstream_model"], r["n"]) for r in rows]
