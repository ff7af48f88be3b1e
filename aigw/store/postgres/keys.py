"""Gateway keys and teams on PostgreSQL (the SQL twin of :mod:`aigw.store.sqlite.keys`
and :mod:`aigw.store.sqlite.teams`): each change and its audit event commit together."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import EllipsisType

import asyncpg

import aigw.store.sqlite.limits as limits_sql
from aigw.audit import admin_event
from aigw.errors import AigwError
from aigw.model import (
    ADMIN_TEAM,
    LIMIT_FIELDS,
    NO_LIMITS,
    KeyNotFound,
    KeyRecord,
    Limits,
    TeamNotFound,
    TeamRecord,
    check_team_name,
    validate_limits,
)
from aigw.store.postgres.audit import append_audit
from aigw.store.postgres.db import PgDatabase
from aigw.store.sqlite.keys import _new_record, _params
from aigw.store.sqlite.keys import _record as key_record
from aigw.store.sqlite.teams import _record as team_record

_KEY_COLUMNS = (
    "id, hash, prefix, name, team, app, created_at, expires_at, revoked_at, replaced_by, "
    + limits_sql.COLUMNS
    + ", admin"
)
_KEY_INSERT = (
    f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(_KEY_COLUMNS.count(',') + 1))})"
)
_TEAM_COLUMNS = f"name, {limits_sql.COLUMNS}, created_at, updated_at, body_retention"


def _no_key(key_id: str) -> KeyNotFound:
    return KeyNotFound(f"no key with id {key_id!r} (see `aigw keys list`)")


def _no_team(name: str) -> TeamNotFound:
    return TeamNotFound(f"no team {name!r} (see `aigw teams list`)")


async def _key_in(conn: asyncpg.Connection, key_id: str) -> KeyRecord:
    row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = $1", key_id)
    if row is None:
        raise _no_key(key_id)
    return key_record(row)


class PgKeys:
    """:class:`~aigw.store.base.KeyStore` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def create(
        self,
        *,
        team: str,
        app: str | None = None,
        name: str | None = None,
        expires_at: float | None = None,
        limits: Limits = NO_LIMITS,
        admin: bool = False,
    ) -> tuple[str, KeyRecord]:
        validate_limits(limits)
        if admin:
            if not limits.empty:
                raise AigwError("an admin key makes no proxied calls, so it takes no limits")
            team = ADMIN_TEAM
        elif team == ADMIN_TEAM:
            raise AigwError(f"{ADMIN_TEAM!r} is reserved for admin keys (aigw keys create --admin)")
        key, rec = _new_record(
            team=team, app=app, name=name, expires_at=expires_at, limits=limits, admin=admin
        )
        async with self.db.pool.acquire() as conn, conn.transaction():
            await conn.execute(_KEY_INSERT, *_params(rec))
            await append_audit(
                conn, [admin_event("keys.create", rec.id, after=rec)], self.db.sealer
            )
        return key, rec

    async def _change(self, key_id: str, action: str, sql: str, *args: object) -> KeyRecord:
        async with self.db.pool.acquire() as conn, conn.transaction():
            before = await _key_in(conn, key_id)
            await conn.execute(sql, *args)
            after = await _key_in(conn, key_id)
            if after != before:
                event = admin_event(action, key_id, before=before, after=after)
                await append_audit(conn, [event], self.db.sealer)
        return after

    async def get(self, key_id: str) -> KeyRecord:
        row = await self.db.fetchrow(f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = $1", key_id)
        if row is None:
            raise _no_key(key_id)
        return key_record(row)

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        row = await self.db.fetchrow(f"SELECT {_KEY_COLUMNS} FROM keys WHERE hash = $1", key_hash)
        return None if row is None else key_record(row)

    async def list_all(self) -> list[KeyRecord]:
        rows = await self.db.fetch(f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY created_at")
        return [key_record(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyRecord:
        return await self._change(
            key_id,
            "keys.revoke",
            "UPDATE keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            time.time(),
            key_id,
        )

    async def rotate(self, key_id: str, *, grace: float) -> tuple[str, KeyRecord, KeyRecord]:
        old = await self.get(key_id)
        now = time.time()
        if old.state(now) != "active":
            raise AigwError(f"key {key_id} is {old.state(now)}; only an active key can be rotated")
        key, rec = _new_record(
            team=old.team,
            app=old.app,
            name=old.name,
            expires_at=old.expires_at,
            limits=old.limits,
            admin=old.admin,
        )
        until = now + grace
        old_end = until if old.expires_at is None else min(old.expires_at, until)
        async with self.db.pool.acquire() as conn, conn.transaction():
            before = await _key_in(conn, old.id)
            await conn.execute(_KEY_INSERT, *_params(rec))
            await conn.execute(
                "UPDATE keys SET expires_at = $1, replaced_by = $2 WHERE id = $3",
                old_end,
                rec.id,
                old.id,
            )
            after = await _key_in(conn, old.id)
            event = admin_event(
                "keys.rotate", old.id, before=before, after={"old": after, "new": rec}
            )
            await append_audit(conn, [event], self.db.sealer)
        return key, rec, after

    async def set_limits(self, key_id: str, limits: Limits) -> KeyRecord:
        validate_limits(limits)
        if (await self.get(key_id)).admin and not limits.empty:
            raise AigwError("an admin key makes no proxied calls, so it takes no limits")
        n = len(LIMIT_FIELDS)
        assignments = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(LIMIT_FIELDS))
        return await self._change(
            key_id,
            "keys.update",
            f"UPDATE keys SET {assignments} WHERE id = ${n + 1}",
            *limits_sql.to_row(limits),
            key_id,
        )

    async def generation(self) -> int:
        row = await self.db.fetchrow("SELECT value FROM generation WHERE id = 1")
        return int(row[0]) if row else 0


class PgTeams:
    """:class:`~aigw.store.base.TeamStore` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def _find_in(self, conn: asyncpg.Connection, name: str) -> TeamRecord | None:
        row = await conn.fetchrow(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE name = $1", name)
        return None if row is None else team_record(row)

    async def _audited(
        self, action: str, name: str, write: Callable[[asyncpg.Connection], Awaitable[str]]
    ) -> None:
        """One team change and its audit event; TeamNotFound when it changed no row."""
        async with self.db.pool.acquire() as conn, conn.transaction():
            before = await self._find_in(conn, name)
            status = await write(conn)
            if status.rsplit(" ", 1)[-1] == "0":
                raise _no_team(name)
            after = await self._find_in(conn, name)
            event = admin_event(action, name, before=before, after=after)
            await append_audit(conn, [event], self.db.sealer)

    async def create(self, name: str, limits: Limits = NO_LIMITS) -> TeamRecord:
        check_team_name(name)
        validate_limits(limits)
        now = time.time()
        values = (name, *limits_sql.to_row(limits), now, now, None)
        marks = ", ".join(f"${i + 1}" for i in range(len(values)))
        sql = f"INSERT INTO teams ({_TEAM_COLUMNS}) VALUES ({marks})"
        try:
            await self._audited("teams.create", name, lambda conn: conn.execute(sql, *values))
        except asyncpg.UniqueViolationError:
            raise AigwError(
                f"team {name!r} already exists (change it with `aigw teams update {name}`)"
            ) from None
        return await self.get(name)

    async def get(self, name: str) -> TeamRecord:
        found = await self.find(name)
        if found is None:
            raise _no_team(name)
        return found

    async def find(self, name: str) -> TeamRecord | None:
        row = await self.db.fetchrow(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE name = $1", name)
        return None if row is None else team_record(row)

    async def list_all(self) -> list[TeamRecord]:
        rows = await self.db.fetch(f"SELECT {_TEAM_COLUMNS} FROM teams ORDER BY name")
        return [team_record(r) for r in rows]

    async def update(
        self, name: str, limits: Limits, *, body_retention: float | EllipsisType | None = ...
    ) -> TeamRecord:
        validate_limits(limits)
        if isinstance(body_retention, float | int) and body_retention <= 0:
            raise AigwError("a retention period must be positive")
        columns = [*LIMIT_FIELDS, "updated_at"]
        params: list[object] = [*limits_sql.to_row(limits), time.time()]
        if body_retention is not ...:
            columns.append("body_retention")
            params.append(body_retention)
        sets = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(columns))
        sql = f"UPDATE teams SET {sets} WHERE name = ${len(params) + 1}"
        await self._audited("teams.update", name, lambda conn: conn.execute(sql, *params, name))
        return await self.get(name)

    async def remove(self, name: str) -> None:
        await self._audited(
            "teams.delete",
            name,
            lambda conn: conn.execute("DELETE FROM teams WHERE name = $1", name),
        )

    async def key_counts(self, now: float) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT team, COUNT(*) AS n FROM keys WHERE (revoked_at IS NULL OR revoked_at > $1) "
            "AND (expires_at IS NULL OR expires_at > $1) AND admin = 0 GROUP BY team",
            now,
        )
        return {r["team"]: int(r["n"]) for r in rows}
