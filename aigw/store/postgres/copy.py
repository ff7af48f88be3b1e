"""Copy the state between a SQLite state file and PostgreSQL, both ways.

Into PostgreSQL (``aigw migrate --to``, and ``aigw restore`` on PostgreSQL): keys,
teams, budget alerts, ledger rows, rollups, the retention horizon and the audit trail
are copied; every insert is ``ON CONFLICT DO NOTHING`` on the row's identity (a ledger
row's is ``sqlite:<id>``, an audit event's its seq), so a second run copies only what
the first did not. Rollups are copied, not rebuilt: they hold the hours whose raw rows
were pruned. Ephemeral state is left behind (rate-limit counters, the response cache,
audit bodies). Meant for a database no gateway has written to yet; the audit trail is
refused if PostgreSQL already holds a different chain. :func:`replace_state` empties
the tables first, in the caller's transaction.

Out of PostgreSQL (``aigw backup`` on PostgreSQL): the same tables, read in one
snapshot, into a new SQLite state file: the file ``aigw backup`` writes on SQLite, so
either backend restores it. Audit events keep their seals, so the chain still verifies.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import asyncpg

from aigw.audit import COLUMNS as AUDIT_COLUMNS
from aigw.audit import GENESIS
from aigw.errors import StoreError
from aigw.model import AuditEvent, LedgerRow
from aigw.store.postgres.ledger import Names
from aigw.store.sqlite import audit_codec
from aigw.store.sqlite.binds import row_sql
from aigw.store.sqlite.db import Database, open_database
from aigw.store.sqlite.ledger import insert_rows, row_names
from aigw.store.sqlite.maintenance import inspect
from aigw.store.sqlite.rollups import KEY_COLUMNS, SUM_COLUMNS, Interned

PAGE = 2000
_LEDGER = [f.name for f in fields(LedgerRow)]
_KEY_COLUMNS_SQL = (
    "id, hash, prefix, name, team, app, created_at, expires_at, revoked_at, replaced_by, rpm, "
    "tpm, max_parallel, budget_nusd, period, alert_at, priority, models, regions, cache, "
    "cache_ttl, scrub, admin"
)
_TEAM_COLUMNS_SQL = (
    "name, rpm, tpm, max_parallel, budget_nusd, period, alert_at, priority, models, regions, "
    "cache, cache_ttl, scrub, created_at, updated_at, body_retention"
)
_ALERT_COLUMNS_SQL = "scope, name, period, mark, fired_at, spent_nusd, budget_nusd"
TABLES = ("keys", "teams", "budget_alerts", "ledger", "rollup_hour", "rollup_day", "audit")

Progress = Callable[[str, int], None]  # (table, rows just handled)
Sized = Callable[[dict[str, int]], None]  # rows per table, once known


def _unsized(totals: dict[str, int]) -> None:
    pass


@dataclass
class Copied:
    """Per table: rows read from SQLite and rows new in PostgreSQL."""

    read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    copied: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))

    def to_json(self) -> dict[str, dict[str, int]]:
        return {t: {"read": self.read[t], "copied": self.copied[t]} for t in TABLES}


def _marks(n: int) -> str:
    return ", ".join(f"${i + 1}" for i in range(n))


async def totals(src: Database) -> dict[str, int]:
    """Rows per table in the SQLite file (for the progress bar)."""
    out = {}
    for table in TABLES:
        row = await src.fetchone(f"SELECT COUNT(*) FROM {table}")
        out[table] = int(row[0]) if row else 0
    return out


async def _insert(
    conn: asyncpg.Connection,
    table: str,
    columns: str,
    rows: list[tuple[object, ...]],
    conflict: str,
) -> int:
    """Insert ``rows``, skipping those already there; returns how many were new."""
    if not rows:
        return 0
    n = columns.count(",") + 1
    async with conn.transaction():
        before = await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
        await conn.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({_marks(n)}) ON CONFLICT {conflict}",
            rows,
        )
        after = await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
    return int(after - before)


async def _check_audit(src: Database, dst: asyncpg.Connection) -> None:
    first = await dst.fetchrow("SELECT hash FROM audit WHERE seq = 1")
    if first is None:
        return
    mine = await src.fetchone("SELECT hash FROM audit WHERE seq = 1")
    if mine is None or mine[0] != first["hash"]:
        raise StoreError(
            "the PostgreSQL database already holds a different audit trail (a gateway "
            "wrote to it); migrate into an empty database"
        )


async def copy_state(src: Database, dst: asyncpg.Connection, progress: Progress) -> Copied:
    """Copy everything into PostgreSQL (see the module docstring); returns what was read
    and copied. Each page is its own transaction (a savepoint in the caller's)."""
    await _check_audit(src, dst)
    done = Copied()

    async def simple(table: str, columns: str, conflict: str, order: str) -> None:
        rows = [
            tuple(r) for r in await src.fetchall(f"SELECT {columns} FROM {table} ORDER BY {order}")
        ]
        done.read[table] += len(rows)
        done.copied[table] += await _insert(dst, table, columns, rows, conflict)
        progress(table, len(rows))

    await simple("keys", _KEY_COLUMNS_SQL, "DO NOTHING", "created_at")
    await simple("teams", _TEAM_COLUMNS_SQL, "DO NOTHING", "name")
    await simple("budget_alerts", _ALERT_COLUMNS_SQL, "DO NOTHING", "fired_at")

    # Ledger rows, a page at a time, each with its SQLite id as its identity.
    after = -1
    ledger_cols = "row_id, " + ", ".join(_LEDGER)
    while True:
        rows = await src.fetchall(
            f"SELECT id, {', '.join(_LEDGER)} FROM ledger WHERE id > ? ORDER BY id LIMIT ?",
            (after, PAGE),
        )
        if not rows:
            break
        after = rows[-1][0]
        values = [(f"sqlite:{r[0]}", *tuple(r)[1:]) for r in rows]
        done.read["ledger"] += len(rows)
        done.copied["ledger"] += await _insert(dst, "ledger", ledger_cols, values, "DO NOTHING")
        progress("ledger", len(rows))

    # Rollups: SQLite's interned ids become names, then PostgreSQL's ids.
    names = Names()
    roll_cols = ", ".join(("bucket", *KEY_COLUMNS, "status", *SUM_COLUMNS))
    for table in ("rollup_hour", "rollup_day"):
        named = ", ".join(f"(SELECT name FROM names WHERE id = r.{c}) AS {c}" for c in KEY_COLUMNS)
        rows = await src.fetchall(
            f"SELECT r.bucket, {named}, r.status, {', '.join('r.' + c for c in SUM_COLUMNS)} "
            f"FROM {table} r"
        )
        wanted = {v for r in rows for v in tuple(r)[1:6] if v is not None}
        async with dst.transaction():
            ids = await names.ids(dst, wanted)
        names.committed()
        values = [
            (r[0], *(0 if v is None else ids[v] for v in tuple(r)[1:6]), *tuple(r)[6:])
            for r in rows
        ]
        done.read[table] += len(rows)
        done.copied[table] += await _insert(dst, table, roll_cols, values, "DO NOTHING")
        progress(table, len(rows))
    row = await src.fetchone("SELECT rows_before, rollups_before FROM retention WHERE id = 1")
    if row is not None:
        await dst.execute(
            "UPDATE retention SET rows_before = GREATEST(rows_before, $1), "
            "rollups_before = GREATEST(rollups_before, $2) WHERE id = 1",
            float(row[0]),
            float(row[1]),
        )

    # The audit trail, events as they were sealed; then the head, if SQLite's is ahead.
    after = -(2**62)
    while True:
        rows = await src.fetchall(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, PAGE),
        )
        if not rows:
            break
        after = rows[-1]["seq"]
        values = [tuple(r) for r in rows]
        done.read["audit"] += len(rows)
        done.copied["audit"] += await _insert(
            dst, "audit", ", ".join(AUDIT_COLUMNS), values, "DO NOTHING"
        )
        progress("audit", len(rows))
    head = await src.fetchone("SELECT seq, hash FROM audit_head WHERE id = 1")
    if head is not None:
        await dst.execute(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq < $1",
            int(head[0]),
            str(head[1]),
        )
    return done


async def replace_state(src: Database, dst: asyncpg.Connection, progress: Progress) -> Copied:
    """Replace PostgreSQL's state with the SQLite file's, in the caller's transaction:
    the copied tables (and audit bodies, which belong to the calls they held) emptied,
    the horizon and the chain's head reset, then :func:`copy_state`. Rate-limit counters
    and the response cache stay (neither is part of a backup)."""
    await dst.execute(
        "TRUNCATE keys, teams, budget_alerts, ledger, rollup_hour, rollup_day, audit, audit_bodies"
    )
    await dst.execute("UPDATE retention SET rows_before = 0, rollups_before = 0 WHERE id = 1")
    await dst.execute("UPDATE audit_head SET seq = 0, hash = $1 WHERE id = 1", GENESIS)
    # TRUNCATE fires no row trigger: tell the directories even if no key is copied.
    await dst.execute("UPDATE generation SET value = value + 1 WHERE id = 1")
    return await copy_state(src, dst, progress)


# -- out of PostgreSQL ----------------------------------------------------------------


async def pg_totals(src: asyncpg.Connection) -> dict[str, int]:
    """Rows per table in PostgreSQL (for the progress bar)."""
    return {t: int(await src.fetchval(f"SELECT COUNT(*) FROM {t}")) for t in TABLES}


def _simple_insert(table: str, columns: str) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * (columns.count(',') + 1))})"


def _linked(before: AuditEvent | None, event: AuditEvent) -> bool:
    """Whether the SQLite view finds ``event``'s prev_hash by itself (stored NULL): it
    is the hash of the event stored just before it, or the genesis of seq 1."""
    if before is None:
        return event.seq == 1 and event.prev_hash == GENESIS
    return before.seq == event.seq - 1 and before.hash == event.prev_hash


def _insert_events(
    conn: sqlite3.Connection,
    events: Sequence[AuditEvent],
    names: dict[str, int],
    before: AuditEvent | None,
) -> None:
    """Store sealed ``events`` as they are (``before``: the event stored last)."""
    rows = []
    for event in events:
        params: list[object] = []
        first = None if _linked(before, event) else audit_codec.pack_hash(event.prev_hash)
        audit_codec.encode_into(params, [event], names, first)
        rows.append(params)
        before = event
    conn.executemany(
        f"INSERT INTO audit_events ({audit_codec.COLUMNS}) VALUES {row_sql(audit_codec.WIDTH)}",
        rows,
    )


async def _pages(src: asyncpg.Connection, sql: str) -> AsyncIterator[list[asyncpg.Record]]:
    """``sql``'s rows, :data:`PAGE` at a time (a server-side cursor: inside the
    caller's transaction)."""
    cursor = await src.cursor(sql)
    while True:
        rows = await cursor.fetch(PAGE)
        if not rows:
            return
        yield rows


async def copy_out(src: asyncpg.Connection, dst: Database, progress: Progress) -> Copied:
    """Copy everything from PostgreSQL into the empty SQLite state file ``dst``; call it
    inside one REPEATABLE READ transaction on ``src`` so every table is read in the same
    snapshot (while gateways keep writing)."""
    done = Copied()
    interned = Interned(dst)

    async def write(table: str, work: Callable[[sqlite3.Connection], None], n: int) -> None:
        await dst.batch(work)
        interned.committed()
        done.read[table] += n
        done.copied[table] += n
        progress(table, n)

    for table, columns, order in (
        ("keys", _KEY_COLUMNS_SQL, "created_at, id"),
        ("teams", _TEAM_COLUMNS_SQL, "name"),
        ("budget_alerts", _ALERT_COLUMNS_SQL, "fired_at"),
    ):
        async for page in _pages(src, f"SELECT {columns} FROM {table} ORDER BY {order}"):
            values = [tuple(r) for r in page]

            def simple(
                c: sqlite3.Connection,
                t: str = table,
                cols: str = columns,
                v: list[tuple[object, ...]] = values,
            ) -> None:
                c.executemany(_simple_insert(t, cols), v)

            await write(table, simple, len(page))

    async for page in _pages(src, f"SELECT {', '.join(_LEDGER)} FROM ledger ORDER BY id"):
        rows = [
            LedgerRow(
                **{
                    **dict(r),
                    "stream": bool(r["stream"]),
                    "usage_estimated": bool(r["usage_estimated"]),
                }
            )
            for r in page
        ]

        def ledger(c: sqlite3.Connection, rows: list[LedgerRow] = rows) -> None:
            insert_rows(c, rows, interned.ids(c, row_names(rows)))

        await write("ledger", ledger, len(rows))

    # Rollups: PostgreSQL's name ids become names, then the file's ids.
    roll_cols = ", ".join(("bucket", *KEY_COLUMNS, "status", *SUM_COLUMNS))
    named = ", ".join(f"(SELECT name FROM names WHERE id = r.{c})" for c in KEY_COLUMNS)
    for table in ("rollup_hour", "rollup_day"):
        sql = (
            f"SELECT r.bucket, {named}, r.status, {', '.join('r.' + c for c in SUM_COLUMNS)} "
            f"FROM {table} r ORDER BY r.bucket"
        )
        async for page in _pages(src, sql):

            def rollups(
                c: sqlite3.Connection, page: list[asyncpg.Record] = page, t: str = table
            ) -> None:
                ids = interned.ids(c, {v for r in page for v in tuple(r)[1:6] if v is not None})
                c.executemany(
                    _simple_insert(t, roll_cols),
                    [
                        (r[0], *(0 if v is None else ids[v] for v in tuple(r)[1:6]), *tuple(r)[6:])
                        for r in page
                    ],
                )

            await write(table, rollups, len(page))
    row = await src.fetchrow("SELECT rows_before, rollups_before FROM retention WHERE id = 1")
    if row is not None:
        await dst.execute(
            "UPDATE retention SET rows_before = ?, rollups_before = ? WHERE id = 1",
            (float(row[0]), float(row[1])),
        )

    # The audit trail, each event as it was sealed; then the chain's head.
    before: AuditEvent | None = None
    sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit ORDER BY seq"
    async for page in _pages(src, sql):
        events = [AuditEvent(**dict(r)) for r in page]

        def audit(
            c: sqlite3.Connection,
            events: list[AuditEvent] = events,
            last: AuditEvent | None = before,
        ) -> None:
            names = interned.ids(c, audit_codec.event_names(events))
            _insert_events(c, events, names, last)

        await write("audit", audit, len(events))
        before = events[-1]
    head = await src.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
    if head is not None and head["seq"] > 0:
        await dst.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (int(head["seq"]), str(head["hash"])),
        )
    return done


def _partial(dest: Path) -> Path:
    """Where the backup is built: beside ``dest``, which must not exist."""
    if dest.exists():
        raise StoreError(f"{dest}: already exists; choose a new file name")
    return dest.with_name(f".{dest.name}.partial-{os.getpid()}")


def _place(partial: Path, dest: Path) -> int:
    """Make the built file self-contained, check it, move it to ``dest``; its size."""
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # no WAL beside it, as on SQLite
    finally:
        conn.close()
    inspect(partial)  # what restore will check, checked now
    try:
        os.link(partial, dest)  # fails if dest appeared meanwhile: never overwritten
    except FileExistsError:
        raise StoreError(f"{dest}: already exists; choose a new file name") from None
    return dest.stat().st_size


def _discard(partial: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)


async def backup(
    src: asyncpg.Connection, dest: Path, progress: Progress, sized: Sized = _unsized
) -> int:
    """Write PostgreSQL's state to the new SQLite file ``dest`` (see :func:`copy_out`;
    one snapshot); returns its size. Built beside it and moved into place only when
    complete, never over an existing file."""
    partial = _partial(dest)
    try:
        db = await open_database(partial, synchronous="normal")
        try:
            async with src.transaction(isolation="repeatable_read", readonly=True):
                sized(await pg_totals(src))
                await copy_out(src, db, progress)
        finally:
            await db.close()
        return _place(partial, dest)
    finally:
        _discard(partial)
