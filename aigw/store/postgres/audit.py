"""The audit trail on PostgreSQL: one hash chain across every process.

:func:`append_audit` runs inside a transaction someone else opened (a group commit,
an admin change). It locks the chain's head row (``SELECT ... FOR UPDATE``) before
sealing, so appends from several processes wait for each other and chain in commit
order; the lock ends with the transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from operator import attrgetter

import asyncpg

from aigw.audit import COLUMNS, GENESIS, Sealer
from aigw.model import AuditBody, AuditEvent
from aigw.store.postgres.db import PgDatabase

_VALUES = attrgetter(*COLUMNS)
_INSERT = (
    f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))})"
)
_BODY_INSERT = (
    "INSERT INTO audit_bodies (request_id, team, ts, expires_at, request, answer) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit"


async def lock_head(conn: asyncpg.Connection) -> tuple[int, str]:
    """Lock the chain's head for this transaction; returns (seq, hash)."""
    row = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


async def append_audit(
    conn: asyncpg.Connection,
    events: Sequence[AuditEvent],
    sealer: Sealer,
    bodies: Sequence[AuditBody] = (),
    head: tuple[int, str] | None = None,
) -> None:
    """Chain and insert ``events`` (and keep ``bodies``) in the open transaction;
    ``head``: the head already locked with :func:`lock_head`."""
    if bodies:
        await conn.executemany(
            _BODY_INSERT,
            [(b.request_id, b.team, b.ts, b.expires_at, b.request, b.answer) for b in bodies],
        )
    if not events:
        return
    seq, prev = head if head is not None else await lock_head(conn)
    seq, prev = sealer.seal(events, seq, prev)
    await conn.executemany(_INSERT, [_VALUES(e) for e in events])
    await conn.execute("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", seq, prev)


async def append(db: PgDatabase, events: Sequence[AuditEvent]) -> None:
    """Events on their own (an admin change with no other row to write)."""
    async with db.pool.acquire() as conn, conn.transaction():
        await append_audit(conn, events, db.sealer)


def _event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(**{name: row[name] for name in COLUMNS})


async def head(db: PgDatabase) -> tuple[int, str] | None:
    row = await db.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
    return None if row is None or row["seq"] == 0 else (int(row["seq"]), str(row["hash"]))


async def chain(
    db: PgDatabase, *, upto: int | None = None, batch: int = 2000
) -> AsyncIterator[AuditEvent]:
    """Every event in seq order (up to seq ``upto``), read in pages."""
    after = -(2**62)
    last = 2**62 if upto is None else upto
    while True:
        rows = await db.fetch(
            f"{_SELECT} WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3", after, last, batch
        )
        for r in rows:
            yield _event(r)
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


def _where(
    since: float | None,
    until: float | None,
    team: str | None,
    key_id: str | None,
    after_seq: int | None,
) -> tuple[str, list[object]]:
    where, params = ["TRUE"], list[object]()
    for sql, value in (
        ("ts >= {}", since),
        ("ts < {}", until),
        ("team = {}", team),
        ("key_id = {}", key_id),
        ("seq > {}", after_seq),
    ):
        if value is not None:
            params.append(value)
            where.append(sql.format(f"${len(params)}"))
    return " AND ".join(where), params


async def query(
    db: PgDatabase,
    *,
    since: float | None = None,
    until: float | None = None,
    team: str | None = None,
    key_id: str | None = None,
    after_seq: int | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events matching the filters, oldest first (with ``limit``: the newest ``limit``)."""
    where, params = _where(since, until, team, key_id, after_seq)
    sql = f"{_SELECT} WHERE {where}"
    if limit is not None:
        params.append(limit)
        sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ${len(params)}) t ORDER BY seq"
    else:
        sql += " ORDER BY seq"
    return [_event(r) for r in await db.fetch(sql, *params)]


async def count(db: PgDatabase, *, since: float | None = None) -> int:
    where, params = _where(since, None, None, None, None)
    row = await db.fetchrow(f"SELECT COUNT(*) FROM audit WHERE {where}", *params)
    return int(row[0]) if row else 0


async def pages(
    db: PgDatabase, *, since: float | None = None, batch: int = 2000
) -> AsyncIterator[list[AuditEvent]]:
    """Matching events in seq order, a page at a time (for exports)."""
    after: int | None = None
    while True:
        where, params = _where(since, None, None, None, after)
        params.append(batch)
        rows = await db.fetch(f"{_SELECT} WHERE {where} ORDER BY seq LIMIT ${len(params)}", *params)
        if rows:
            yield [_event(r) for r in rows]
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


async def by_request_id(db: PgDatabase, request_id: str) -> list[AuditEvent]:
    rows = await db.fetch(f"{_SELECT} WHERE request_id = $1 ORDER BY seq", request_id)
    return [_event(r) for r in rows]


async def bodies_of(db: PgDatabase, request_id: str, now: float) -> list[AuditBody]:
    rows = await db.fetch(
        "SELECT request_id, team, ts, expires_at, request, answer FROM audit_bodies "
        "WHERE request_id = $1 AND expires_at > $2 ORDER BY id",
        request_id,
        now,
    )
    return [AuditBody(**dict(r)) for r in rows]


async def prune_bodies(db: PgDatabase, now: float) -> int:
    """Delete the bodies whose retention has passed; returns how many."""
    return await db.execute("DELETE FROM audit_bodies WHERE expires_at <= $1", now)
