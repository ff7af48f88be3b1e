"""Copy a SQLite state file into PostgreSQL (``aigw migrate --to``), safe to rerun.

Keys, teams, budget alerts, ledger rows, rollups, the retention horizon and the audit
trail are copied; every insert is ``ON CONFLICT DO NOTHING`` on the row's identity
(a ledger row's is ``sqlite:<id>``, an audit event's its seq), so a second run copies
only what the first did not. Rollups are copied, not rebuilt: they hold the hours
whose raw rows were pruned. Ephemeral state is left behind (rate-limit counters, the
response cache, audit bodies). Meant for a database no gateway has written to yet;
the audit trail is refused if PostgreSQL already holds a different chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from aigw.audit import COLUMNS as AUDIT_COLUMNS
from aigw.errors import StoreError
from aigw.model import LedgerRow
from aigw.store.postgres.db import PgDatabase
from aigw.store.postgres.ledger import Names
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import KEY_COLUMNS, SUM_COLUMNS

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
    dst: PgDatabase, table: str, columns: str, rows: list[tuple[object, ...]], conflict: str
) -> int:
    """Insert ``rows``, skipping those already there; returns how many were new."""
    if not rows:
        return 0
    n = columns.count(",") + 1
    async with dst.pool.acquire() as conn, conn.transaction():
        before = await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
        await conn.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({_marks(n)}) ON CONFLICT {conflict}",
            rows,
        )
        after = await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
    return int(after - before)


async def _check_audit(src: Database, dst: PgDatabase) -> None:
    first = await dst.fetchrow("SELECT hash FROM audit WHERE seq = 1")
    if first is None:
        return
    mine = await src.fetchone("SELECT hash FROM audit WHERE seq = 1")
    if mine is None or mine[0] != first["hash"]:
        raise StoreError(
            "the PostgreSQL database already holds a different audit trail (a gateway "
            "wrote to it); migrate into an empty database"
        )


async def copy_state(src: Database, dst: PgDatabase, progress: Progress) -> Copied:
    """Copy everything (see the module docstring); returns what was read and copied."""
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
        async with dst.pool.acquire() as conn, conn.transaction():
            ids = await names.ids(conn, wanted)
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
