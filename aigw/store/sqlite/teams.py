"""Teams: named limits shared by every key of the team.

A key names its team as free text; a team record is optional. A key whose team has
no record is limited only by its own limits. Every change bumps the generation
counter (triggers in migration 0002), so a running server reloads within a second.
"""

from __future__ import annotations

import sqlite3
import time

import aigw.store.sqlite.limits as limits_store
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
from aigw.store.sqlite.db import Database

_COLUMNS = f"name, {limits_store.COLUMNS}, created_at, updated_at"
_PLACEHOLDERS = ", ".join(["?"] * (_COLUMNS.count(",") + 1))


def _record(row: sqlite3.Row) -> TeamRecord:
    return TeamRecord(
        name=row["name"],
        limits=limits_store.from_row(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create(db: Database, name: str, limits: Limits = NO_LIMITS) -> TeamRecord:
    check_team_name(name)
    validate_limits(limits)
    now = time.time()
    try:
        await db.execute(
            f"INSERT INTO teams ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
            (name, *limits_store.to_row(limits), now, now),
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


async def update(db: Database, name: str, limits: Limits) -> TeamRecord:
    """Replace the team's limits (the caller merges with the current ones)."""
    validate_limits(limits)
    assignments = ", ".join(f"{c} = ?" for c in LIMIT_FIELDS)
    changed = await db.execute(
        f"UPDATE teams SET {assignments}, updated_at = ? WHERE name = ?",
        (*limits_store.to_row(limits), time.time(), name),
    )
    if not changed:
        raise TeamNotFound(f"no team {name!r} (create it with `aigw teams create {name}`)")
    return await get(db, name)


async def remove(db: Database, name: str) -> None:
    """Delete the team record; its keys keep working with only their own limits."""
    if not await db.execute("DELETE FROM teams WHERE name = ?", (name,)):
        raise TeamNotFound(f"no team {name!r} (see `aigw teams list`)")


async def key_counts(db: Database, now: float) -> dict[str, int]:
    """Active keys per team name, including teams that have no record (admin keys,
    which belong to no team, are not counted)."""
    rows = await db.fetchall(
        "SELECT team, COUNT(*) AS n FROM keys WHERE (revoked_at IS NULL OR revoked_at > ?) "
        "AND (expires_at IS NULL OR expires_at > ?) AND admin = 0 GROUP BY team",
        (now, now),
    )
    return {r["team"]: r["n"] for r in rows}
