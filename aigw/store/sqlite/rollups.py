"""Ledger rollups: totals per UTC hour and day, kept in the ledger's own group commit.

``rollup_hour`` and ``rollup_day`` (migration ``0010_rollups``) hold, per bucket and per
(team, app, key, model, provider, status), the sums a report or a budget needs. The
ledger's batch insert calls :func:`add_rollups` and runs its statements in the same
transaction: the batch is summed in Python per hour and group (a group commit's batch
has few groups), then upserted with bound values, so rows and rollups commit together
or not at all, with no extra round trip per request. Names (team, key, ...) are
interned once per process and their ids cached. ``RAW_SUMS`` is the same sums in SQL
over raw rows: the edges of a report, ``aigw ledger check`` and the migration's backfill.

A ledger row's id is its time in microseconds: its hour is ``id // 3600e6``, in Python
and in SQL alike, and a time range on raw rows is a range of ids (:func:`us_bound`).

Readers split a time range into :func:`segments`: whole UTC days from ``rollup_day``,
whole hours from ``rollup_hour``, and only the ragged edges (less than an hour at each
end) from raw rows. The result is identical to summing the raw rows. Raw rows older
than the retention horizon are pruned; a range starting inside a pruned hour takes
that whole hour from the rollups (the rows that would refine it are gone).
"""

from __future__ import annotations

import math
import sqlite3
import weakref
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from aigw.model import LedgerRow
from aigw.store.sqlite.binds import multi_row, row_chunks
from aigw.store.sqlite.db import Database

HOUR = 3600
DAY = 86400
US = 1_000_000  # a ledger row's id is its time in microseconds (0011_ledger_compact)
LATENCY_BOUNDS = (100, 250, 500, 1000, 2500, 5000, 10000, 30000)  # ms; then "more"

KEY_COLUMNS = ("team", "app", "key", "model", "provider")  # names.id, 0 = none
# The ledger's text column behind each rollup key column.
LEDGER_COLUMN = {
    "team": "team",
    "app": "app",
    "key": "key_id",
    "model": "model",
    "provider": "provider",
}
SUM_COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nusd",
    "unpriced",
    "cache_hits",
    "cache_misses",
    "saved_nusd",
    "streams",
    "latency_ms",
    *(f"lat_{b}" for b in LATENCY_BOUNDS),
    "lat_more",
)


def _latency_sums(col: str) -> list[str]:
    out, low = [], None
    for b in LATENCY_BOUNDS:
        out.append(f"SUM({col} <= {b})" if low is None else f"SUM({col} > {low} AND {col} <= {b})")
        low = b
    out.append(f"SUM({col} > {low})")
    return out


# Each SUM_COLUMNS value from raw ledger rows ``l`` (same order).
RAW_SUMS = (
    "COUNT(*)",
    "SUM(l.status >= 400)",
    "SUM(l.prompt_tokens)",
    "SUM(l.completion_tokens)",
    "SUM(l.cached_tokens)",
    "SUM(l.cache_write_tokens)",
    "SUM(l.reasoning_tokens)",
    "SUM(IFNULL(l.cost_nusd, 0))",
    "SUM(l.cost_nusd IS NULL)",
    "SUM(l.cache IS 'hit')",
    "SUM(l.cache IS 'miss')",
    "SUM(l.saved_nusd)",
    "SUM(l.stream != 0)",
    "SUM(l.latency_ms)",
    *_latency_sums("l.latency_ms"),
)
assert len(RAW_SUMS) == len(SUM_COLUMNS)


def bucket_sql(step: int) -> str:
    """The start (unix s) of the ``step``-second bucket holding ledger row ``l``: from
    its id, an integer, so exactly as the rollups and time ranges see it."""
    return f"(l.id / {step * US} * {step})"


def us_bound(ts: float) -> int:
    """The first ledger row id at or after time ``ts``: ``ts <= t`` is ``us_bound(ts) <=
    id``. Whole seconds convert exactly."""
    return math.ceil(ts * US)


def floor_to(ts: float, step: int) -> int:
    """The largest multiple of ``step`` that is <= ``ts`` (as SQLite compares them)."""
    b = int(ts // step) * step
    if b > ts:
        b -= step
    elif b + step <= ts:
        b += step
    return b


def ceil_to(ts: float, step: int) -> int:
    b = floor_to(ts, step)
    return b if b == ts else b + step


# Interned name ids per open database (names are never deleted, so a committed id
# stays right for the life of the file).
_IDS: weakref.WeakKeyDictionary[Database, dict[str, int]] = weakref.WeakKeyDictionary()
_COLS = ", ".join(("bucket", *KEY_COLUMNS, "status", *SUM_COLUMNS))
_WIDTH = 7 + len(SUM_COLUMNS)
_HEADS = {t: f"INSERT INTO {t} ({_COLS}) VALUES" for t in ("rollup_hour", "rollup_day")}
_UPSERT_TAIL = (
    f" ON CONFLICT (bucket, {', '.join(KEY_COLUMNS)}, status) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in SUM_COLUMNS)
)
_MAX_GROUPS = 500  # names per statement (name_ids), below SQLite's 999 variables


def name_ids(conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, int]:
    """The ids of ``names``, interned in the open transaction where new."""
    ids: dict[str, int] = {}
    for i in range(0, len(names), _MAX_GROUPS):
        chunk = names[i : i + _MAX_GROUPS]
        marks = ", ".join(["(?)"] * len(chunk))
        conn.execute(f"INSERT OR IGNORE INTO names (name) VALUES {marks}", chunk)
        rows = conn.execute(
            f"SELECT id, name FROM names WHERE name IN ({', '.join('?' * len(chunk))})", chunk
        ).fetchall()
        ids.update((r[1], r[0]) for r in rows)
    return ids


class Interned:
    """Name ids for one group commit: the database's cached ids, plus those interned
    inside this transaction (cached only once it commits: a rolled-back id may be
    given to another name later)."""

    def __init__(self, db: Database) -> None:
        ids = _IDS.get(db)
        if ids is None:
            ids = _IDS[db] = {}
        self.known = ids
        self.new: dict[str, int] = {}

    def ids(self, conn: sqlite3.Connection, names: set[str]) -> dict[str, int]:
        missing = [n for n in names if n not in self.known and n not in self.new]
        if missing:
            self.new.update(name_ids(conn, missing))
        return {**self.known, **self.new} if self.new else self.known

    def committed(self) -> None:
        self.known.update(self.new)
        self.new = {}


def _latency_slot(ms: int) -> int:
    return bisect_left(LATENCY_BOUNDS, ms)  # <= 100 -> 0, ..., > 30000 -> len(bounds)


_LAT0 = SUM_COLUMNS.index("lat_100")
# add_rollups accumulates by position: the first columns, in this order.
assert SUM_COLUMNS[:14] == (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nusd",
    "unpriced",
    "cache_hits",
    "cache_misses",
    "saved_nusd",
    "streams",
    "latency_ms",
)


def rollup_sums(
    rows: Sequence[LedgerRow], hours: Sequence[int], ids: dict[str, int]
) -> tuple[dict[tuple[int, ...], list[int]], dict[tuple[int, ...], list[int]]]:
    """The hourly and daily rollup increments of ``rows`` (``hours``: the start of each
    row's hour, as its backend sees it; ``ids``: their names' ids), by rollup key
    (bucket, team, app, key, model, provider, status), in :data:`SUM_COLUMNS` order.
    Shared by every backend, so they all count a row the same way."""
    by_hour: dict[tuple[int, ...], list[int]] = {}
    width = len(SUM_COLUMNS)
    for r, hour in zip(rows, hours, strict=True):
        key: tuple[int, ...] = (
            hour,
            ids[r.team] if r.team is not None else 0,
            ids[r.app] if r.app is not None else 0,
            ids[r.key_id] if r.key_id is not None else 0,
            ids[r.model] if r.model is not None else 0,
            ids[r.provider] if r.provider is not None else 0,
            r.status,
        )
        acc = by_hour.get(key)
        if acc is None:
            acc = by_hour[key] = [0] * width
        acc[0] += 1
        acc[1] += r.status >= 400
        acc[2] += r.prompt_tokens
        acc[3] += r.completion_tokens
        acc[4] += r.cached_tokens
        acc[5] += r.cache_write_tokens
        acc[6] += r.reasoning_tokens
        if r.cost_nusd is None:
            acc[8] += 1
        else:
            acc[7] += r.cost_nusd
        acc[9] += r.cache == "hit"
        acc[10] += r.cache == "miss"
        acc[11] += r.saved_nusd
        acc[12] += bool(r.stream)
        acc[13] += r.latency_ms
        acc[_LAT0 + _latency_slot(r.latency_ms)] += 1
    by_day: dict[tuple[int, ...], list[int]] = {}
    for key, acc in by_hour.items():
        dkey = (key[0] // DAY * DAY, *key[1:])
        total = by_day.get(dkey)
        if total is None:
            by_day[dkey] = list(acc)
        else:
            for i, v in enumerate(acc):
                total[i] += v
    return by_hour, by_day


def add_rollups(
    conn: sqlite3.Connection, rows: Sequence[LedgerRow], row_ids: Sequence[int], ids: dict[str, int]
) -> None:
    """Add ``rows`` (stored as ``row_ids``: their hours) to the hourly and daily rollups,
    in the transaction (on ``conn``) that inserts them; ``ids``: their names' ids."""
    if not rows:
        return
    hour_us = HOUR * US
    hours, days = rollup_sums(rows, [row_id // hour_us * HOUR for row_id in row_ids], ids)
    for table, groups in (("rollup_hour", hours), ("rollup_day", days)):
        items = list(groups.items())
        head = _HEADS[table]
        for start, stop in row_chunks(len(items), _WIDTH):
            params: list[int] = []
            for key, acc in items[start:stop]:
                params += key
                params += acc
            conn.execute(multi_row(head, _WIDTH, stop - start, _UPSERT_TAIL), params)


# -- reading: rollups for whole hours and days, raw rows for the edges --------------


Segment = tuple[str, float, float]  # ("raw" | "hour" | "day", start, end); +-inf = open


def segments(
    since: float | None, until: float | None, *, pruned_before: float = 0
) -> list[Segment]:
    """Split [since, until) into raw edges, whole hours and whole days.

    A bound inside an hour whose raw rows were pruned (before ``pruned_before``) takes
    that whole hour from the rollups.
    """
    lo = -math.inf if since is None else since
    hi = math.inf if until is None else until
    # Bounds inside hours whose raw rows were pruned widen to whole hours.
    if lo < pruned_before and math.isfinite(lo):
        lo = floor_to(lo, HOUR)
    if hi < pruned_before and math.isfinite(hi):
        hi = ceil_to(hi, HOUR)
    if lo >= hi:
        return []
    h0 = lo if not math.isfinite(lo) else ceil_to(lo, HOUR)
    h1 = hi if not math.isfinite(hi) else floor_to(hi, HOUR)
    if h0 >= h1:
        return [("raw", lo, hi)]
    out: list[Segment] = []
    if h0 > lo:
        out.append(("raw", lo, h0))
    d0 = h0 if not math.isfinite(h0) else ceil_to(h0, DAY)
    d1 = h1 if not math.isfinite(h1) else floor_to(h1, DAY)
    if d0 >= d1:
        out.append(("hour", h0, h1))
    else:
        if d0 > h0:
            out.append(("hour", h0, d0))
        out.append(("day", d0, d1))
        if h1 > d1:
            out.append(("hour", d1, h1))
    if hi > h1:
        out.append(("raw", h1, hi))
    return out


def _range(
    column: str, start: float, end: float, *, us: bool = False
) -> tuple[list[str], list[Any]]:
    """[start, end) on ``column``: unix seconds, or (``us``) ledger row ids."""
    where, params = [], []
    if math.isfinite(start):
        where.append(f"{column} >= ?")
        params.append(us_bound(start) if us else start)
    if math.isfinite(end):
        where.append(f"{column} < ?")
        params.append(us_bound(end) if us else end)
    return where or ["1"], params


def name_of(column: str) -> str:
    """The name behind rollup key ``r.<column>`` (NULL for id 0)."""
    return f"(SELECT name FROM names WHERE id = r.{column})"


def union_sql(
    segs: Sequence[Segment],
    *,
    raw_select: str,
    roll_select: str,
    raw_where: str = "",
    roll_where: str = "",
    group: str = "",
    roll_group: str | None = None,
    params_raw: Sequence[Any] = (),
    params_roll: Sequence[Any] = (),
) -> tuple[str, list[Any]]:
    """One UNION ALL over ``segs``: ``raw_select`` reads ledger rows ``l``, ``roll_select``
    a rollup table ``r`` (:func:`name_of` turns an id into its name, once per group);
    both end with the same columns. Extra conditions and their parameters per kind."""
    parts, params = [], []
    raw_by = f" GROUP BY {group}" if group else ""
    roll_by = f" GROUP BY {roll_group or group}" if (roll_group or group) else ""
    for kind, start, end in segs:
        if kind == "raw":
            where, p = _range("l.id", start, end, us=True)
            if raw_where:
                where.append(raw_where)
                p += list(params_raw)
            parts.append(f"SELECT {raw_select} FROM ledger l WHERE {' AND '.join(where)}{raw_by}")
        else:
            where, p = _range("r.bucket", start, end)
            if roll_where:
                where.append(roll_where)
                p += list(params_roll)
            parts.append(
                f"SELECT {roll_select} FROM rollup_{kind} r WHERE {' AND '.join(where)}{roll_by}"
            )
        params += p
    return " UNION ALL ".join(parts), params
