"""The ledger on PostgreSQL: group commits, rollups, reports, spend, alerts, counters.

A group commit is one transaction of four round trips, whatever its size: ``BEGIN``
(with ``SET LOCAL`` when it does not wait for the flush); one statement locking the
audit chain's head row and recording the batch id in ``ledger_batches`` (a batch
already there was committed before, e.g. a spooled batch whose first try failed after
the commit: the whole batch is skipped); one statement writing the rows, their rollups
(summed in Python like SQLite's, upserted in a fixed key order so concurrent processes
never deadlock), the audit bodies and the events chained under the head's lock, each
table's values sent as one array per column (``unnest``); ``COMMIT``. Every sum is an
exact integer (``bigint``; ``SUM`` is ``numeric``, read back as ``int``).

A batch id is read only when the local spool (:mod:`.spool`) replays a batch: one
whose first try failed ambiguously (the commit reached the server, its answer did not)
is then skipped. A gateway replays its spool within a second of PostgreSQL answering
again, at its stop and at its next start, so an id is needed only for as long as
PostgreSQL can stay unreachable from a gateway, or a gateway with a non-empty spool can
stay stopped: :data:`KEEP_BATCH_IDS` (a week) is far beyond both, and the retention
task deletes older ids (:meth:`PgLedger.expire`). Past it, a replay still skips a batch
whose first ledger row is there, so a batch with ledger rows (every batch a gateway
writes) stays covered for as long as raw rows are kept.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import fields
from operator import attrgetter
from typing import Any

import asyncpg

from aigw.audit import COLUMNS as AUDIT_COLUMNS
from aigw.errors import StoreError
from aigw.model import (
    REPORT_GROUPS,
    AlertRow,
    AuditBody,
    AuditEvent,
    LedgerRecord,
    LedgerRow,
    ReportRow,
    SpendRow,
)
from aigw.store.postgres.db import PgDatabase
from aigw.store.sqlite.rollups import (
    DAY,
    HOUR,
    KEY_COLUMNS,
    SUM_COLUMNS,
    Segment,
    floor_to,
    rollup_sums,
    segments,
)

_NAMES = [f.name for f in fields(LedgerRow)]
_VALUES = attrgetter(*_NAMES)
_ROLL_COLS = ("bucket", *KEY_COLUMNS, "status", *SUM_COLUMNS)

PRUNE_BATCH = 2000  # rows per DELETE: a short transaction each
KEEP_BATCH_IDS = 7 * DAY  # see the module docstring


def row_values(row: LedgerRow, row_id: str) -> tuple[Any, ...]:
    values = list(_VALUES(row))
    values[_NAMES.index("stream")] = int(row.stream)
    values[_NAMES.index("usage_estimated")] = int(row.usage_estimated)
    return (row_id, *values)


class Names:
    """Interned name ids for one group commit: the database's cached ids (``known``,
    shared), plus those interned in this transaction (``new``, cached by
    :meth:`committed` only: a rolled-back id never exists)."""

    def __init__(self, known: dict[str, int] | None = None) -> None:
        self.known: dict[str, int] = {} if known is None else known
        self.new: dict[str, int] = {}

    async def ids(self, conn: asyncpg.Connection, names: set[str]) -> dict[str, int]:
        missing = sorted(n for n in names if n not in self.known and n not in self.new)
        if missing:
            # Sorted: two processes interning the same names lock them in the same order.
            await conn.execute(
                "INSERT INTO names (name) SELECT unnest($1::text[]) ORDER BY 1 "
                "ON CONFLICT (name) DO NOTHING",
                missing,
            )
            rows = await conn.fetch(
                "SELECT id, name FROM names WHERE name = ANY($1::text[])", missing
            )
            self.new.update((r["name"], int(r["id"])) for r in rows)
        return {**self.known, **self.new} if self.new else self.known

    def committed(self) -> None:
        self.known.update(self.new)
        self.new = {}


def _sums(
    rows: Sequence[LedgerRow], ids: dict[str, int]
) -> dict[str, dict[tuple[int, ...], list[int]]]:
    """Hour and day rollup increments of ``rows``, by rollup key (as SQLite's)."""
    hours, days = rollup_sums(rows, [floor_to(r.ts, HOUR) for r in rows], ids)
    return {"rollup_hour": hours, "rollup_day": days}


# A group commit's rows travel as one array per column (``unnest``): one statement
# writes every row, rollup and event of the batch, whatever its size. The arrays'
# element types, from the records' field types (bools are stored as 0/1 integers).
_ARRAY_TYPES = {"float": "float8", "str": "text", "int": "int8", "bool": "int8"}


def _array_types(cls: type[Any]) -> tuple[str, ...]:
    out = []
    for f in fields(cls):
        base = str(f.type).split("|")[0].strip()
        out.append(_ARRAY_TYPES[base])
    return tuple(out)


_LEDGER_TYPES = ("text", *_array_types(LedgerRow))  # row_id first
_AUDIT_TYPES = _array_types(AuditEvent)
_BODY_COLUMNS = ("request_id", "team", "ts", "expires_at", "request", "answer")
_BODY_TYPES = ("text", "text", "float8", "float8", "text", "text")
_AUDIT_VALUES = attrgetter(*AUDIT_COLUMNS)


class _Params:
    """``$n`` placeholders for one statement, numbered as its parts are added."""

    def __init__(self) -> None:
        self.n = 0

    def unnest(self, types: Sequence[str]) -> str:
        marks = []
        for t in types:
            self.n += 1
            marks.append(f"${self.n}::{t}[]")
        return f"SELECT * FROM unnest({', '.join(marks)})"

    def one(self) -> str:
        self.n += 1
        return f"${self.n}"


def _rollup_part(table: str, p: _Params) -> str:
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in SUM_COLUMNS)
    # The arrays come sorted by key (unnest keeps their order): concurrent processes
    # take the rollup rows' locks in one order.
    return (
        f"INSERT INTO {table} ({', '.join(_ROLL_COLS)}) "
        f"{p.unnest(['int8'] * len(_ROLL_COLS))} "
        f"ON CONFLICT (bucket, {', '.join(KEY_COLUMNS)}, status) DO UPDATE SET {sets}"
    )


def _write_sql(ledger: bool, events: bool, bodies: bool) -> str:
    """The one statement writing a group commit's ledger rows (and their rollups),
    audit bodies and audit events (and the chain's new head)."""
    p = _Params()
    parts = []
    if ledger:
        parts.append(
            f"l AS (INSERT INTO ledger (row_id, {', '.join(_NAMES)}) {p.unnest(_LEDGER_TYPES)})"
        )
        parts.append(f"rh AS ({_rollup_part('rollup_hour', p)})")
        parts.append(f"rd AS ({_rollup_part('rollup_day', p)})")
    if bodies:
        parts.append(
            f"ab AS (INSERT INTO audit_bodies ({', '.join(_BODY_COLUMNS)}) {p.unnest(_BODY_TYPES)})"
        )
    if events:
        parts.append(
            f"a AS (INSERT INTO audit ({', '.join(AUDIT_COLUMNS)}) {p.unnest(_AUDIT_TYPES)})"
        )
        main = f"UPDATE audit_head SET seq = {p.one()}, hash = {p.one()} WHERE id = 1"
    else:
        main = "SELECT 1"
    return f"WITH {', '.join(parts)} {main}" if parts else main


_WRITE_SQL = {
    (ledger, events, bodies): _write_sql(ledger, events, bodies)
    for ledger in (False, True)
    for events in (False, True)
    for bodies in (False, True)
}
# The batch ids recorded (those not there before: only batches replayed from the spool
# can find theirs there) and, when events come too, the chain's head locked: one round
# trip.
_CLAIM = (
    "INSERT INTO ledger_batches (id, applied_at) SELECT unnest($1::text[]), $2 "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_LOCK_AND_CLAIM = (
    f"WITH b AS ({_CLAIM}) "
    "SELECT h.seq, h.hash, ARRAY(SELECT id FROM b) AS fresh "
    "FROM audit_head h WHERE h.id = 1 FOR UPDATE OF h"
)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows -> one list per column (an empty batch: ``width`` empty lists)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def write_batches(
    conn: asyncpg.Connection,
    db: PgDatabase,
    names: Names,
    batches: Sequence[tuple[str, Sequence[LedgerRecord]]],
    *,
    replay: bool = False,
) -> list[bool]:
    """Write group commits in the open transaction, as one (a gateway's group commit
    is one batch; a spool replay many): for each batch, False if its id was already
    committed (nothing of it written). ``replay``: batches from the local spool.

    Two round trips (plus two when new names are interned, one when replaying): the
    chain's head locked with the batch ids claimed, then one statement writing every
    row, rollup, body and event."""
    now = time.time()
    ids = [batch_id for batch_id, _ in batches]
    carries_events = any(type(r) is AuditEvent for _, rows in batches for r in rows)
    # The chain's head first: every group commit that carries events takes the same
    # locks in the same order (head, names, rollups), so processes never deadlock.
    head: tuple[int, str] | None = None
    if carries_events:
        found = await conn.fetchrow(_LOCK_AND_CLAIM, ids, now)
        if found is None:
            raise StoreError("the audit chain's head row is missing")
        head = (int(found[0]), str(found[1]))
        fresh = set(found[2])
    else:
        fresh = {r[0] for r in await conn.fetch(_CLAIM, ids, now)}
    if replay and fresh:
        # A batch spooled longer than its id is kept (KEEP_BATCH_IDS): its rows, while
        # raw rows are kept, still say whether it was committed.
        firsts = [
            f"{batch_id}:0"
            for batch_id, rows in batches
            if batch_id in fresh and any(type(r) is LedgerRow for r in rows)
        ]
        if firsts:
            seen = await conn.fetch(
                "SELECT row_id FROM ledger WHERE row_id = ANY($1::text[])", firsts
            )
            fresh -= {r[0].rpartition(":")[0] for r in seen}
    ledger: list[tuple[Any, ...]] = []
    kept: list[LedgerRow] = []
    events: list[AuditEvent] = []
    bodies: list[AuditBody] = []
    done: list[bool] = []
    for batch_id, rows in batches:
        done.append(batch_id in fresh)
        if batch_id not in fresh:
            continue
        fresh.discard(batch_id)  # the same id twice in one call: written once
        i = 0
        for r in rows:
            if type(r) is LedgerRow:
                ledger.append(row_values(r, f"{batch_id}:{i}"))
                kept.append(r)
                i += 1
            elif type(r) is AuditEvent:
                events.append(r)
            elif type(r) is AuditBody:
                bodies.append(r)
    args: list[Any] = []
    if ledger:
        args += _columns(ledger, len(_LEDGER_TYPES))
        wanted = {
            v for r in kept for v in (r.team, r.app, r.key_id, r.model, r.provider) if v is not None
        }
        name_ids = await names.ids(conn, wanted)
        for groups in _sums(kept, name_ids).values():
            args += _columns([(*k, *groups[k]) for k in sorted(groups)], len(_ROLL_COLS))
    if bodies:
        args += _columns(
            [(b.request_id, b.team, b.ts, b.expires_at, b.request, b.answer) for b in bodies],
            len(_BODY_COLUMNS),
        )
    if events:
        assert head is not None
        seq, prev = db.sealer.seal(events, *head)
        args += _columns([_AUDIT_VALUES(e) for e in events], len(AUDIT_COLUMNS))
        args += [seq, prev]
    if ledger or bodies or events:
        await conn.execute(_WRITE_SQL[bool(ledger), bool(events), bool(bodies)], *args)
    return done


class PgLedger:
    """:class:`~aigw.store.base.LedgerSink`, :class:`~aigw.store.base.LedgerQueries`
    and :class:`~aigw.store.base.LimitState` on PostgreSQL."""

    def __init__(self, db: PgDatabase, *, synchronous: str = "full") -> None:
        self.db = db
        self.names: dict[str, int] = {}
        # [ledger] synchronous: "full" waits for the WAL flush at every group commit;
        # "normal" does not (synchronous_commit off for the ledger's transactions
        # only): a commit still survives a crash of aigw, but a crash of PostgreSQL
        # or its machine can lose the last few hundred ms of commits, as SQLite's
        # "normal" can lose the last ones at power loss.
        self.wait_for_flush = synchronous == "full"
        self._begin = (
            "BEGIN" if self.wait_for_flush else "BEGIN; SET LOCAL synchronous_commit = off"
        )

    async def append_many(self, rows: Sequence[LedgerRecord]) -> None:
        await self.append_batch(uuid.uuid4().hex, rows)

    async def append_batch(
        self, batch_id: str, rows: Sequence[LedgerRecord], *, replay: bool = False
    ) -> bool:
        """Commit one group under ``batch_id``; False if it was committed before.
        ``replay``: it comes from the local spool (see :func:`write_batches`)."""
        (done,) = await self.append_batches([(batch_id, rows)], replay=replay)
        return done

    async def append_batches(
        self, batches: Sequence[tuple[str, Sequence[LedgerRecord]]], *, replay: bool = False
    ) -> list[bool]:
        """Commit several groups in one transaction (the spool's replay: one commit
        for many batches); for each, False if it was committed before."""
        async with self.db.pool.acquire() as conn:
            # BEGIN and the setting in one round trip (asyncpg's transaction() would
            # take two).
            await conn.execute(self._begin)
            names = Names(self.names)
            try:
                done = await write_batches(conn, self.db, names, batches, replay=replay)
                await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    # Failing here (e.g. a cancelled query still in progress) must not
                    # hide the first error; the pool's release rolls back or closes.
                    with suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
        names.committed()
        return done

    # -- retention -------------------------------------------------------------------

    async def prune_rows(self, before: float, *, batch: int = PRUNE_BATCH) -> int:
        """Delete raw ledger rows of the whole hours before ``before`` (their totals stay
        in the rollups); returns how many. Small batches: group commits, from every
        process, never wait long on the deletes."""
        cut = floor_to(before, HOUR)
        # First the horizon: reports read the rollups for those hours from now on.
        await self.db.execute(
            "UPDATE retention SET rows_before = GREATEST(rows_before, $1) WHERE id = 1", cut
        )
        deleted = 0
        while True:
            n = await self.db.execute(
                "DELETE FROM ledger WHERE id IN "
                "(SELECT id FROM ledger WHERE ts < $1 ORDER BY ts LIMIT $2)",
                cut,
                batch,
            )
            deleted += n
            if n < batch:
                return deleted

    async def prune_rollups(self, before: float, *, batch: int = PRUNE_BATCH) -> int:
        """Delete rollups of the whole days before ``before`` (and any raw rows there)."""
        cut = floor_to(before, DAY)
        deleted = await self.prune_rows(cut, batch=batch)
        await self.db.execute(
            "UPDATE retention SET rollups_before = GREATEST(rollups_before, $1) WHERE id = 1",
            cut,
        )
        for table in ("rollup_hour", "rollup_day"):  # a day per DELETE: short transactions
            while True:
                row = await self.db.fetchrow(f"SELECT MIN(bucket) FROM {table}")
                if row is None or row[0] is None or row[0] >= cut:
                    break
                upto = min(cut, floor_to(row[0], DAY) + DAY)
                deleted += await self.db.execute(
                    f"DELETE FROM {table} WHERE bucket < $1", int(upto)
                )
        return deleted

    async def expire(self, now: float) -> int:
        """Delete the ids of group commits older than :data:`KEEP_BATCH_IDS`. One
        statement: it locks only rows no writer touches (new ids never conflict with
        them), and the retention task runs it hourly, so a run deletes about an hour
        of ids."""
        return await self.db.execute(
            "DELETE FROM ledger_batches WHERE applied_at < $1", now - KEEP_BATCH_IDS
        )

    # -- queries ---------------------------------------------------------------------

    async def pruned_before(self) -> float:
        row = await self.db.fetchrow("SELECT rows_before FROM retention WHERE id = 1")
        return float(row[0]) if row else 0.0

    async def summarize(
        self, *, by: str, since: float | None, until: float | None, raw: bool = False
    ) -> list[ReportRow]:
        if by not in REPORT_GROUPS:
            raise ValueError(by)
        segs = (
            [("raw", -math.inf if since is None else since, math.inf if until is None else until)]
            if raw
            else segments(since, until, pruned_before=await self.pruned_before())
        )
        if not segs:
            return []
        q = _Query()
        union = q.union(
            segs,
            raw_select=f"{_GROUPS[by]} AS name, {_REPORT_RAW}",
            roll_select=f"{_ROLL_GROUPS[by][0]} AS name, {_REPORT_ROLL}",
            group="1",
            roll_group=_ROLL_GROUPS[by][1],
        )
        order = "name" if by == "day" else "cost DESC, requests DESC, name"
        sql = f"""
            SELECT name, SUM(requests) AS requests, SUM(errors) AS errors,
                   SUM(prompt_tokens) AS prompt_tokens,
                   SUM(completion_tokens) AS completion_tokens, SUM(cost) AS cost,
                   SUM(unpriced) AS unpriced, SUM(hits) AS hits, SUM(misses) AS misses,
                   SUM(saved) AS saved
            FROM ({union}) u GROUP BY name HAVING SUM(requests) > 0 ORDER BY {order}
        """
        rows = await self.db.fetch(sql, *q.params)
        return [
            ReportRow(
                r["name"],
                int(r["requests"]),
                int(r["errors"]),
                int(r["prompt_tokens"]),
                int(r["completion_tokens"]),
                int(r["cost"]),
                int(r["unpriced"]),
                int(r["hits"]),
                int(r["misses"]),
                int(r["saved"]),
            )
            for r in rows
        ]

    async def by_request_id(self, request_id: str) -> list[LedgerRow]:
        rows = await self.db.fetch(
            f"SELECT {', '.join(_NAMES)} FROM ledger WHERE request_id = $1 ORDER BY id",
            request_id,
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

    async def request_ids(self) -> list[str]:
        """Every row's request id (duplicates kept: tests count them)."""
        return [r[0] for r in await self.db.fetch("SELECT request_id FROM ledger")]

    async def unpriced_models(self, since: float | None) -> list[tuple[str, str, int]]:
        rows = await self.db.fetch(
            "SELECT provider, upstream_model, COUNT(*) AS n FROM ledger "
            "WHERE cost_nusd IS NULL AND status < 400 AND provider IS NOT NULL "
            "AND upstream_model IS NOT NULL AND ts >= $1 "
            "GROUP BY provider, upstream_model ORDER BY n DESC, provider, upstream_model",
            since if since is not None else -math.inf,
        )
        return [(r["provider"], r["upstream_model"], int(r["n"])) for r in rows]

    async def spend_between(self, start: float, end: float, *, raw: bool = False) -> list[SpendRow]:
        segs = (
            [("raw", start, end)]
            if raw
            else segments(start, end, pruned_before=await self.pruned_before())
        )
        if not segs:
            return []
        q = _Query()
        union = q.union(
            segs,
            raw_select="l.team AS team, l.key_id AS key_id, "
            "SUM(COALESCE(l.cost_nusd, 0)) AS cost, "
            "COUNT(*) FILTER (WHERE l.cost_nusd IS NULL AND l.status < 400) AS unpriced",
            roll_select=f"{_name_of('team')} AS team, {_name_of('key')} AS key_id, "
            "SUM(r.cost_nusd) AS cost, "
            "SUM(CASE WHEN r.status < 400 THEN r.unpriced ELSE 0 END) AS unpriced",
            group="1, 2",
            roll_group="r.team, r.key",
        )
        rows = await self.db.fetch(
            "SELECT team, key_id, SUM(cost) AS cost, SUM(unpriced) AS unpriced "
            f"FROM ({union}) u GROUP BY team, key_id",
            *q.params,
        )
        return [SpendRow(r["team"], r["key_id"], int(r["cost"]), int(r["unpriced"])) for r in rows]

    async def spend_of(self, scope: str, name: str, start: float, end: float) -> tuple[int, int]:
        segs = segments(start, end, pruned_before=await self.pruned_before())
        if not segs:
            return (0, 0)
        column = "team" if scope == "team" else "key_id"
        roll = "team" if scope == "team" else "key"
        q = _Query()
        union = q.union(
            segs,
            raw_select="SUM(COALESCE(l.cost_nusd, 0)) AS cost, "
            "COUNT(*) FILTER (WHERE l.cost_nusd IS NULL AND l.status < 400) AS unpriced",
            roll_select="SUM(r.cost_nusd) AS cost, "
            "SUM(CASE WHEN r.status < 400 THEN r.unpriced ELSE 0 END) AS unpriced",
            raw_where=lambda: f"l.{column} = {q.param(name)}",
            roll_where=lambda: f"r.{roll} = (SELECT id FROM names WHERE name = {q.param(name)})",
        )
        row = await self.db.fetchrow(f"SELECT SUM(cost), SUM(unpriced) FROM ({union}) u", *q.params)
        return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)

    # -- alerts ----------------------------------------------------------------------

    async def save_alerts(self, alerts: Sequence[AlertRow]) -> None:
        if not alerts:
            return
        await self.db.pool.executemany(
            f"INSERT INTO budget_alerts ({_ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT DO NOTHING",
            [
                (a.scope, a.name, a.period, a.mark, a.fired_at, a.spent_nusd, a.budget_nusd)
                for a in alerts
            ],
        )

    async def load_alerts(self, periods: Sequence[str]) -> list[AlertRow]:
        if not periods:
            return []
        rows = await self.db.fetch(
            f"SELECT {_ALERT_COLUMNS} FROM budget_alerts WHERE period = ANY($1::text[])",
            list(periods),
        )
        return [AlertRow(**dict(r)) for r in rows]

    async def alert_history(self, scope: str, name: str, period: str) -> list[AlertRow]:
        rows = await self.db.fetch(
            f"SELECT {_ALERT_COLUMNS} FROM budget_alerts WHERE scope = $1 AND name = $2 "
            "AND period = $3 ORDER BY fired_at",
            scope,
            name,
            period,
        )
        return [AlertRow(**dict(r)) for r in rows]

    # -- rate-limit counters -----------------------------------------------------------

    async def load_counters(self, now: float) -> dict[str, tuple[float, float]]:
        rows = await self.db.fetch(
            "SELECT bucket, tat, interval FROM limit_counters WHERE tat > $1", now
        )
        return {r["bucket"]: (r["tat"], r["interval"]) for r in rows}

    async def save_counters(
        self, busy: Sequence[tuple[str, float, float]], idle: Sequence[str]
    ) -> None:
        if busy:
            await self.db.execute(
                "INSERT INTO limit_counters (bucket, tat, interval) "
                "SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[]) "
                "ON CONFLICT (bucket) DO UPDATE SET tat = excluded.tat, "
                "interval = excluded.interval",
                [b[0] for b in busy],
                [b[1] for b in busy],
                [b[2] for b in busy],
            )
        if idle:
            await self.db.execute(
                "DELETE FROM limit_counters WHERE bucket = ANY($1::text[])", list(idle)
            )


_ALERT_COLUMNS = "scope, name, period, mark, fired_at, spent_nusd, budget_nusd"


def ts_bucket(step: int) -> str:
    """The start of the ``step``-second bucket holding ``l.ts``, exactly as comparisons
    with ``ts`` see it (a float division may round across a boundary: corrected)."""
    q = f"floor(l.ts / {step})::bigint"
    return f"(({q} - ({q} * {step} > l.ts)::int + ({q} * {step} + {step} <= l.ts)::int) * {step})"


def _name_of(column: str) -> str:
    return f"(SELECT name FROM names WHERE id = r.{column})"


def _day(expr: str) -> str:
    return f"to_char(to_timestamp({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


_GROUPS = {
    "team": "COALESCE(l.team, '-')",
    "app": "COALESCE(l.app, '-')",
    "key": "COALESCE(l.key_id, '-')",
    "model": "COALESCE(l.model, '-')",
    "provider": "COALESCE(l.provider, '-')",
    "day": _day(ts_bucket(DAY)),
}
_ROLL_GROUPS = {
    "team": (f"COALESCE({_name_of('team')}, '-')", "r.team"),
    "app": (f"COALESCE({_name_of('app')}, '-')", "r.app"),
    "key": (f"COALESCE({_name_of('key')}, '-')", "r.key"),
    "model": (f"COALESCE({_name_of('model')}, '-')", "r.model"),
    "provider": (f"COALESCE({_name_of('provider')}, '-')", "r.provider"),
    "day": (_day("r.bucket"), "r.bucket"),
}
assert tuple(_GROUPS) == REPORT_GROUPS == tuple(_ROLL_GROUPS)
_REPORT_RAW = (
    "COUNT(*) AS requests, COUNT(*) FILTER (WHERE l.status >= 400) AS errors, "
    "SUM(l.prompt_tokens) AS prompt_tokens, SUM(l.completion_tokens) AS completion_tokens, "
    "SUM(COALESCE(l.cost_nusd, 0)) AS cost, "
    "COUNT(*) FILTER (WHERE l.cost_nusd IS NULL) AS unpriced, "
    "COUNT(*) FILTER (WHERE l.cache = 'hit') AS hits, "
    "COUNT(*) FILTER (WHERE l.cache = 'miss') AS misses, SUM(l.saved_nusd) AS saved"
)
_REPORT_ROLL = (
    "SUM(r.requests) AS requests, SUM(r.errors) AS errors, "
    "SUM(r.prompt_tokens) AS prompt_tokens, SUM(r.completion_tokens) AS completion_tokens, "
    "SUM(r.cost_nusd) AS cost, SUM(r.unpriced) AS unpriced, SUM(r.cache_hits) AS hits, "
    "SUM(r.cache_misses) AS misses, SUM(r.saved_nusd) AS saved"
)


class _Query:
    """Positional parameters ($1, $2, ...) collected while SQL is built."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def _range(self, column: str, start: float, end: float) -> list[str]:
        where = []
        if math.isfinite(start):
            where.append(f"{column} >= {self.param(float(start))}::float8")
        if math.isfinite(end):
            where.append(f"{column} < {self.param(float(end))}::float8")
        return where or ["TRUE"]

    def union(
        self,
        segs: Sequence[Segment],
        *,
        raw_select: str,
        roll_select: str,
        raw_where: Any = None,
        roll_where: Any = None,
        group: str = "",
        roll_group: str | None = None,
    ) -> str:
        """One UNION ALL over ``segs`` (see :func:`aigw.store.sqlite.rollups.union_sql`);
        ``raw_where``/``roll_where``: callables adding a condition (and its parameter)."""
        parts = []
        raw_by = f" GROUP BY {group}" if group else ""
        roll_by = f" GROUP BY {roll_group or group}" if (roll_group or group) else ""
        for kind, start, end in segs:
            if kind == "raw":
                where = self._range("l.ts", start, end)
                if raw_where is not None:
                    where.append(raw_where())
                parts.append(
                    f"SELECT {raw_select} FROM ledger l WHERE {' AND '.join(where)}{raw_by}"
                )
            else:
                where = self._range("r.bucket", start, end)
                if roll_where is not None:
                    where.append(roll_where())
                parts.append(
                    f"SELECT {roll_select} FROM rollup_{kind} r "
                    f"WHERE {' AND '.join(where)}{roll_by}"
                )
        return " UNION ALL ".join(parts)
