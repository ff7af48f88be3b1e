"""The cost ledger: one row per call, appended in group commits (with the audit trail)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import fields
from operator import attrgetter

from aigw.model import REPORT_GROUPS, AuditBody, AuditEvent, LedgerRecord, LedgerRow, ReportRow
from aigw.store.sqlite.audit import append_audit
from aigw.store.sqlite.db import Database

_NAMES = [f.name for f in fields(LedgerRow)]
_ROW_SQL = "(" + ", ".join("?" * len(_NAMES)) + ")"
_VALUES = attrgetter(*_NAMES)  # a row's values in column order (astuple deep-copies: slow)
# SQLite allows 32766 bound variables per statement; stay far below it.
MAX_BATCH = 500


async def append_many(db: Database, rows: Sequence[LedgerRecord]) -> None:
    """Commit a group: ledger rows (multi-row INSERTs) and the audit events and bodies
    that came with them, in one transaction, one commit."""
    ledger = [r for r in rows if type(r) is LedgerRow]
    events = [r for r in rows if type(r) is AuditEvent]
    bodies = [r for r in rows if type(r) is AuditBody]

    def write(conn: sqlite3.Connection) -> None:
        for start in range(0, len(ledger), MAX_BATCH):
            chunk = ledger[start : start + MAX_BATCH]
            sql = f"INSERT INTO ledger ({', '.join(_NAMES)}) VALUES " + ", ".join(
                [_ROW_SQL] * len(chunk)
            )
            params: list[object] = []
            for row in chunk:
                params.extend(_VALUES(row))
            conn.execute(sql, params)
        append_audit(conn, events, db.sealer, bodies)

    await db.batch(write)


# The SQL of each of REPORT_GROUPS.
_GROUPS = {
    "team": "COALESCE(team, '-')",
    "app": "COALESCE(app, '-')",
    "key": "COALESCE(key_id, '-')",
    "model": "COALESCE(model, '-')",
    "provider": "COALESCE(provider, '-')",
    "day": "date(ts, 'unixepoch')",
}
assert tuple(_GROUPS) == REPORT_GROUPS


async def summarize(
    db: Database, *, by: str, since: float | None, until: float | None
) -> list[ReportRow]:
    """Totals per group. Costs are summed as integers, so they add up exactly."""
    group = _GROUPS[by]
    where, params = ["1 = 1"], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    order = "name" if by == "day" else "cost DESC, requests DESC, name"
    sql = f"""
        SELECT {group} AS name,
               COUNT(*) AS requests,
               SUM(status >= 400) AS errors,
               SUM(prompt_tokens) AS prompt_tokens,
               SUM(completion_tokens) AS completion_tokens,
               SUM(COALESCE(cost_nusd, 0)) AS cost,
               SUM(cost_nusd IS NULL) AS unpriced
        FROM ledger WHERE {" AND ".join(where)}
        GROUP BY name ORDER BY {order}
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
