"""Teams: named limits shared by every key of the team.

A key names its team as free text; a team record is optional. A key whose team has
no record is limited only by its own limits. Every change bumps the generation
counter (triggers in migration 0002), so a running server reloads within a second.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from types import EllipsisType

import aigw.store.sqlite.limits as limits_store
from aigw.audit import admin_event
from aigw.errors import AigwError
from aigw.model import (
    LIMIT_FIELDS,
    NO_LIMITS,
    Limits,
    TeamNotFound,
    TeamRecord,
    check_team_name,
    validate_limits,
)
from aigw.store.sqlite.audit import append_audit
from aigw.store.sqlite.db import Database

_COLUMNS = f"name, {limits_store.COLUMNS}, created_at, updated_at, body_retention"
_PLACEHOLDERS = ", ".join(["?"] * (_COLUMNS.count(",") + 1))


def _record(row: sqlite3.Row) -> TeamRecord:
    return TeamRecord(
        name=row["name"],
        limits=limits_store.from_row(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        body_retention=row["body_retention"],
    )


def _find_in(conn: sqlite3.Connection, name: str) -> TeamRecord | None:
    """A team read inside a write transaction (its before or after, for the audit)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM teams WHERE name = ?", (name,)).fetchone()
    return None if row is None else _record(row)


def _audited(
    db: Database, action: str, name: str, sql: str, params: tuple[object, ...]
) -> Callable[[sqlite3.Connection], None]:
    """The write of one team change and its audit event (before/after); TeamNotFound
    when it changed no row."""

    def work(conn: sqlite3.Connection) -> None:
        before = _find_in(conn, name)
        if not conn.execute(sql, params).rowcount:
            raise TeamNotFound(f"no team {name!r} (see `aigw teams list`)")
        after = _find_in(conn, name)
        append_audit(conn, [admin_event(action, name, before=before, after=after)], db.sealer)

    return work


async def create(db: Database, name: str, limits: Limits = NO_LIMITS) -> TeamRecord:
    check_team_name(name)
    validate_limits(limits)
    now = time.time()
    try:
        await db.batch(
            _audited(
                db,
                "teams.create",
                name,
                f"INSERT INTO teams ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                (name, *limits_store.to_row(limits), now, now, None),
            )
        )
    except sqlite3.IntegrityError:
        raise AigwError(
            f"team {name!r} already exists (change it with `aigw teams update {name}`)"
        ) from None
    return await get(db, name)


async def get(db: Database, name: str) -> TeamRecord:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM teams WHERE name = ?", (name,))
    if row is None:
        raise TeamNotFound(f"no team {name!r} (see `aigw teams list`)")
    return _record(row)


async def find(db: Database, name: str) -> TeamRecord | None:
    try:
        return await get(db, name)
    except TeamNotFound:
        return None


async def list_all(db: Database) -> list[TeamRecord]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} FROM teams ORDER BY name")
    return [_record(r) for r in rows]


async def update(
    db: Database,
    name: str,
    limits: Limits,
    *,
    body_retention: float | EllipsisType | None = ...,
) -> TeamRecord:
    """Replace the team's limits (the caller merges with the current ones) and, when
    given, how long the audit log keeps its bodies (None: not kept)."""
    validate_limits(limits)
    if isinstance(body_retention, float | int) and body_retention <= 0:
        raise AigwError("a retention period must be positive")
    sets = [f"{c} = ?" for c in LIMIT_FIELDS] + ["updated_at = ?"]
    params: list[object] = [*limits_store.to_row(limits), time.time()]
    if body_retention is not ...:
        sets.append("body_retention = ?")
        params.append(body_retention)
    sql = f"UPDATE teams SET {', '.join(sets)} WHERE name = ?"
    await db.batch(_audited(db, "teams.update", name, sql, (*params, name)))
    return await get(db, name)


async def remove(db: Database, name: str) -> None:
    """Delete the team record; its keys keep working with only their own limits."""
    await db.batch(_audited(db, "teams.delete", name, "DELETE FROM teams WHERE name = ?", (name,)))


async def key_counts(db: Database, now: float) -> dict[str, int]:
    """Active keys per team name, including teams that have no record (admin keys,
    which belong to no team, are not counted)."""
    rows = await db.fetchall(
        "SELECT team, COUNT(*) AS n FROM keys WHERE (revoked_at IS NULL OR revoked_at > ?) "
        "AND (expires_at IS NULL OR expires_at > ?) AND admin = 0 GROUP BY team",
        (now, now),
    )
    return {r["team"]: r["n"] for r in rows}
