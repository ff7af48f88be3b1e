"""The cost ledger: one row per call, appended in group commits (with the audit trail).

Rows are stored compact (``ledger_rows``, migration ``0011_ledger_compact``): the row id
is the call's time in microseconds (so time ranges need no index), names are ids into
``names`` (held in memory by the writer, :class:`~aigw.store.sqlite.rollups.Interned`),
gateway request ids keep only their random part, other ids their bytes (0014). The view
``ledger`` shows every row with the old columns; readers use it, with time ranges on ``id``.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import fields

from aigw.model import REPORT_GROUPS, AuditBody, AuditEvent, LedgerRecord, LedgerRow, ReportRow
from aigw.store.sqlite.audit import append_audit
from aigw.store.sqlite.binds import NULL, multi_row, row_chunks
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import (
    DAY,
    US,
    Interned,
    add_rollups,
    bucket_sql,
    name_of,
    segments,
    union_sql,
    us_bound,
)

_NAMES = [f.name for f in fields(LedgerRow)]
# The compact table's columns (migration 0011_ledger_compact), in insert order.
_COLUMNS = (
    "id, request_id, key_id, team, app, endpoint, model, provider, upstream_model, status, "
    "flags, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, "
    "reasoning_tokens, cost_nusd, latency_ms, saved_nusd, error, "
    "upstream_request_id, routing"
)
_WIDTH = _COLUMNS.count(",") + 1
_INSERT = f"INSERT INTO ledger_rows ({_COLUMNS}) VALUES"
# A gateway id (aigw.pipeline.context.new_request_id): its first 13 hex digits are the
# call's microsecond, the other 11 random. When the microsecond is the row's id, only
# the random part is stored (an integer), and a lookup by id reads that one row.
_GATEWAY_ID = re.compile(r"req_[0-9a-f]{24}")
_HEX_ID = re.compile(r"req_(?:[0-9a-f]{2})+")  # e.g. OpenAI's x-request-id
_CACHE = {None: 0, "hit": 4, "miss": 8, "bypass": 12}  # flags bits 2-3; attempts from 16


def to_us(ts: float) -> int:
    """A time as a row id (before any bump to a free microsecond)."""
    return round(ts * US)


# The id columns are declared ANY (NUMERIC affinity), which turns text such as '007' or
# '1e3' into a number; values that affinity leaves alone are stored instead (migration
# 0014_ledger_text_ids): a request id's text as the blob of its UTF-8 bytes, an
# upstream id's text behind this marker (its blobs are 'req_<hex>' ids).
_TEXT_MARK = "\x01"


def _pack_request_id(rid: str, us: int) -> bytes | int:
    if _GATEWAY_ID.fullmatch(rid) and int(rid[4:17], 16) == us:
        return int(rid[17:], 16)
    return rid.encode("utf-8", "surrogatepass")


def _pack_upstream_id(rid: str | None) -> str | bytearray | float:
    """Its bytes (a bytearray: binds with no adapter), or its text behind the marker;
    None binds as NULL."""
    if rid is None:
        return NULL
    return bytearray.fromhex(rid[4:]) if _HEX_ID.fullmatch(rid) else _TEXT_MARK + rid


def _free_ids(rows: Sequence[LedgerRow]) -> list[int]:
    """Each row's id: its microsecond, or the next one not taken in this batch."""
    ids: list[int] = []
    taken: set[int] = set()
    for row in rows:
        us = to_us(row.ts)
        while us in taken:
            us += 1
        taken.add(us)
        ids.append(us)
    return ids


def _encode(row: LedgerRow, us: int, names: dict[str, int]) -> tuple[object, ...]:
    """The stored values of ``row``, in :data:`_COLUMNS` order; None binds as
    :data:`~aigw.store.sqlite.binds.NULL` (no adapter lookup)."""
    model = row.model
    upstream = row.upstream_model
    error = row.error
    routing = row.routing
    return (
        us,
        _pack_request_id(row.request_id, us),
        NULL if row.key_id is None else names[row.key_id],
        NULL if row.team is None else names[row.team],
        NULL if row.app is None else names[row.app],
        names[row.endpoint],
        NULL if model is None else names[model],
        NULL if row.provider is None else names[row.provider],
        NULL if upstream == model else 0 if upstream is None else names[upstream],
        row.status,
        bool(row.stream) | bool(row.usage_estimated) << 1 | _CACHE[row.cache] | row.attempts << 4,
        row.prompt_tokens,
        row.completion_tokens,
        row.cached_tokens,
        row.cache_write_tokens,
        row.reasoning_tokens,
        row.cost_nusd,
        row.latency_ms,
        row.saved_nusd,
        NULL if error is None else error,
        _pack_upstream_id(row.upstream_request_id),
        NULL if routing is None else routing,
    )


def row_names(rows: Sequence[LedgerRow]) -> set[str]:
    """The strings ``rows`` store as names ids."""
    return {
        v
        for r in rows
        for v in (r.key_id, r.team, r.app, r.endpoint, r.model, r.provider, r.upstream_model)
        if v is not None
    }


def insert_rows(
    conn: sqlite3.Connection, rows: Sequence[LedgerRow], names: dict[str, int]
) -> list[int]:
    """Multi-row INSERTs of ``rows`` into the ledger (rollups not included); returns
    their ids. ``names`` holds the id of every string in :func:`row_names`."""
    ids = _free_ids(rows)
    for start, stop in row_chunks(len(rows), _WIDTH):
        params: list[object] = []
        for i in range(start, stop):
            params.extend(_encode(rows[i], ids[i], names))
        try:
            conn.execute(multi_row(_INSERT, _WIDTH, stop - start), params)
        except sqlite3.IntegrityError as exc:
            if not _id_taken(exc):
                raise
            # A microsecond an earlier commit took (the failed statement alone was
            # undone): these rows one by one, each at the next free microsecond.
            for i in range(start, stop):
                while True:
                    try:
                        conn.execute(multi_row(_INSERT, _WIDTH, 1), _encode(rows[i], ids[i], names))
                        break
                    except sqlite3.IntegrityError as again:
                        if not _id_taken(again):
                            raise
                        ids[i] += 1
    return ids


def _id_taken(exc: sqlite3.IntegrityError) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_PRIMARYKEY"


async def append_many(db: Database, rows: Sequence[LedgerRecord]) -> None:
    """Commit a group: ledger rows (multi-row INSERTs), their rollups, and the audit
    events and bodies that came with them, in one transaction, one commit."""
    ledger = [r for r in rows if type(r) is LedgerRow]
    events = [r for r in rows if type(r) is AuditEvent]
    bodies = [r for r in rows if type(r) is AuditBody]
    interned = Interned(db)

    def write(conn: sqlite3.Connection) -> None:
        names = interned.ids(conn, row_names(ledger)) if ledger else interned.known
        if ledger:
            ids = insert_rows(conn, ledger, names)
            add_rollups(conn, ledger, ids, names)
        append_audit(conn, events, db.sealer, bodies, names, interned)

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
    """The rows of calls with this id (a client may reuse one), oldest first."""
    # A gateway id is found by the time in it (no index); any id is looked for as its
    # bytes too (client ids, rows that moved to a free microsecond, rows from before 0011).
    where = ["l.request_id = ?"]
    params: list[object] = [request_id.encode("utf-8", "surrogatepass")]
    if _GATEWAY_ID.fullmatch(request_id):
        where.append("l.id = ? AND l.request_id = ?")
        params += [int(request_id[4:17], 16), int(request_id[17:], 16)]
    rows = await db.fetchall(
        f"SELECT {', '.join(f'v.{n}' for n in _NAMES)} FROM ("
        + " UNION ALL ".join(
            f"SELECT l.id FROM ledger_rows l WHERE {w}"
            + (" AND typeof(l.request_id) <> 'integer'" if i == 0 else "")
            for i, w in enumerate(where)
        )
        + ") AS f JOIN ledger v ON v.id = f.id ORDER BY v.id",
        params,
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
    # Grouped by names ids (one id per name), each name looked up once per group.
    rows = await db.fetchall(
        "SELECT (SELECT name FROM names WHERE id = g.provider) AS provider, "
        "(SELECT name FROM names WHERE id = g.upstream) AS upstream_model, n "
        "FROM (SELECT provider, IFNULL(upstream_model, model) AS upstream, COUNT(*) AS n "
        "FROM ledger_rows WHERE cost_nusd IS NULL AND status < 400 "
        "AND provider IS NOT NULL AND id >= ? GROUP BY 1, 2) g "
        "WHERE upstream_model IS NOT NULL ORDER BY n DESC, provider, upstream_model",
        [us_bound(since) if since is not None else -(2**63)],
    )
    return [(r["provider"], r["upstream_model"], r["n"]) for r in rows]
