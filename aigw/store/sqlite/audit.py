"""The audit trail's SQL: chained appends, queries, bodies and their pruning.

:func:`append_audit` runs inside a transaction someone else opened (the ledger's
group commit, an admin change): it reads the chain head, seals the events after it
(:class:`aigw.audit.Sealer`) and moves the head, so proxied calls and CLI changes
from several processes share one chain in commit order.

Events are stored compact (``audit_events``, migration ``0013_audit_compact``,
:mod:`~aigw.store.sqlite.audit_codec`); readers use the view ``audit``, which shows
every event with the values its hash covers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence

from aigw.audit import COLUMNS, GENESIS, Sealer
from aigw.model import AuditBody, AuditEvent
from aigw.store.sqlite.audit_codec import COLUMNS as STORED
from aigw.store.sqlite.audit_codec import GATEWAY_ID, WIDTH, encode_into, event_names, pack_hash
from aigw.store.sqlite.binds import multi_row, row_chunks
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import Interned, name_ids

_INSERT = f"INSERT INTO audit_events ({STORED}) VALUES"
_BODY_INSERT = (
    "INSERT INTO audit_bodies (request_id, team, ts, expires_at, request, answer) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# The head, and the stored hash of the event it names: when they agree, the first new
# event's prev_hash is implicit (stored NULL), like every later one's.
_HEAD = (
    "SELECT h.seq, h.hash, (SELECT a.hash FROM audit_events a WHERE a.seq = h.seq) "
    "FROM audit_head h WHERE h.id = 1"
)


def append_audit(
    conn: sqlite3.Connection,
    events: Sequence[AuditEvent],
    sealer: Sealer,
    bodies: Sequence[AuditBody] = (),
    names: dict[str, int] | None = None,
    interned: Interned | None = None,
) -> None:
    """Chain and insert ``events`` (and keep ``bodies``) in the open transaction.
    ``names``: ids of names, as the ledger rows of the same commit needed them (the
    events' names are nearly always among them); ``interned``: where missing ones are
    interned (None: looked up here, uncached)."""
    if bodies:
        conn.executemany(
            _BODY_INSERT,
            [(b.request_id, b.team, b.ts, b.expires_at, b.request, b.answer) for b in bodies],
        )
    if not events:
        return
    if names is None:
        names = {}
    row = conn.execute(_HEAD).fetchone()
    if row is None:
        seq, prev, linked = 0, GENESIS, True
    else:
        seq, prev, last = row
        linked = isinstance(last, bytes) and last.hex() == prev
    seq, head = sealer.seal(events, seq, prev)
    # Multi-row INSERTs: cheaper per row than executemany on the event loop.
    for start, stop in row_chunks(len(events), WIDTH):
        chunk = events[start:stop]
        params: list[object] = []
        first = None if linked or start else pack_hash(chunk[0].prev_hash)
        try:
            encode_into(params, chunk, names, first)
        except KeyError:  # a name no ledger row of this commit had: intern, once
            wanted = event_names(events)
            names = interned.ids(conn, wanted) if interned else name_ids(conn, sorted(wanted))
            params.clear()
            encode_into(params, chunk, names, first)
        conn.execute(multi_row(_INSERT, WIDTH, len(chunk)), params)
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (seq, head),
    )


async def append(db: Database, events: Sequence[AuditEvent]) -> None:
    """Events on their own (an admin change with no other row to write)."""
    await db.batch(lambda conn: append_audit(conn, events, db.sealer))


def _event(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(**{name: row[name] for name in COLUMNS})


async def head(db: Database) -> tuple[int, str] | None:
    row = await db.fetchone("SELECT seq, hash FROM audit_head WHERE id = 1")
    return None if row is None else (row["seq"], row["hash"])


async def chain(
    db: Database, *, upto: int | None = None, batch: int = 2000
) -> AsyncIterator[AuditEvent]:
    """Every event in seq order (up to seq ``upto``), read in pages (the trail may be
    long)."""
    after = -(2**62)
    last = 2**62 if upto is None else upto
    while True:
        rows = await db.fetchall(
            f"SELECT {', '.join(COLUMNS)} FROM audit WHERE seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT ?",
            (after, last, batch),
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
    where, params = ["1 = 1"], list[object]()
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    if team is not None:
        where.append("team = ?")
        params.append(team)
    if key_id is not None:
        where.append("key_id = ?")
        params.append(key_id)
    if after_seq is not None:
        where.append("seq > ?")
        params.append(after_seq)
    return " AND ".join(where), params


async def query(
    db: Database,
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
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit WHERE {where}"
    if limit is not None:
        sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?) ORDER BY seq"
        params.append(limit)
    else:
        sql += " ORDER BY seq"
    return [_event(r) for r in await db.fetchall(sql, params)]


async def count(db: Database, *, since: float | None = None) -> int:
    where, params = _where(since, None, None, None, None)
    row = await db.fetchone(f"SELECT COUNT(*) FROM audit WHERE {where}", params)
    return int(row[0]) if row else 0


async def pages(
    db: Database, *, since: float | None = None, batch: int = 2000
) -> AsyncIterator[list[AuditEvent]]:
    """Matching events in seq order, a page at a time (for exports)."""
    after: int | None = None
    while True:
        where, params = _where(since, None, None, None, after)
        rows = await db.fetchall(
            f"SELECT {', '.join(COLUMNS)} FROM audit WHERE {where} ORDER BY seq LIMIT ?",
            [*params, batch],
        )
        if rows:
            yield [_event(r) for r in rows]
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


async def by_request_id(db: Database, request_id: str) -> list[AuditEvent]:
    # A gateway id is found by the time in it (ts is indexed); any id is looked for as
    # text too (client ids, events whose time is not the id's).
    found = ["SELECT seq FROM audit_events WHERE request_id = ? AND typeof(request_id) = 'text'"]
    params: list[object] = [request_id]
    if GATEWAY_ID.fullmatch(request_id):
        us = int(request_id[4:17], 16)
        found.append("SELECT seq FROM audit_events WHERE ts >= ? AND ts <= ? AND request_id = ?")
        params += [(us - 1) / 1e6, (us + 1) / 1e6, int(request_id[17:], 16)]
    rows = await db.fetchall(
        f"SELECT {', '.join(COLUMNS)} FROM audit WHERE seq IN ({' UNION ALL '.join(found)}) "
        "ORDER BY seq",
        params,
    )
    # A neighbouring microsecond's event with the same random bits is another id.
    return [e for e in map(_event, rows) if e.request_id == request_id]


async def bodies_of(db: Database, request_id: str, now: float) -> list[AuditBody]:
    rows = await db.fetchall(
        "SELECT request_id, team, ts, expires_at, request, answer FROM audit_bodies "
        "WHERE request_id = ? AND expires_at > ? ORDER BY id",
        (request_id, now),
    )
    return [AuditBody(**dict(r)) for r in rows]


async def prune_bodies(db: Database, now: float) -> int:
    """Delete the bodies whose retention has passed; returns how many."""
    return await db.execute("DELETE FROM audit_bodies WHERE expires_at <= ?", (now,))
