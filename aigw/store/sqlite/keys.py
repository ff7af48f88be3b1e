"""Gateway keys: only a sha256 of each key is stored; the key is shown once."""

from __future__ import annotations

import secrets
import sqlite3
import time

import aigw.store.sqlite.limits as limits_store
from aigw.audit import admin_event
from aigw.errors import AigwError
from aigw.model import (
    ADMIN_TEAM,
    KEY_PREFIX,
    LIMIT_FIELDS,
    NO_LIMITS,
    KeyNotFound,
    KeyRecord,
    Limits,
    hash_key,
    new_key,
    validate_limits,
)
from aigw.store.sqlite.audit import append_audit
from aigw.store.sqlite.db import Database


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        hash=row["hash"],
        prefix=row["prefix"],
        name=row["name"],
        team=row["team"],
        app=row["app"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        replaced_by=row["replaced_by"],
        limits=limits_store.from_row(row),
        admin=bool(row["admin"]),
    )


_COLUMNS = (
    "id, hash, prefix, name, team, app, created_at, expires_at, revoked_at, replaced_by, "
    + limits_store.COLUMNS
    + ", admin"
)
_PLACEHOLDERS = ", ".join(["?"] * (_COLUMNS.count(",") + 1))
_INSERT = f"INSERT INTO keys ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"


def _new_record(
    *,
    team: str,
    app: str | None,
    name: str | None,
    expires_at: float | None,
    limits: Limits = NO_LIMITS,
    admin: bool = False,
) -> tuple[str, KeyRecord]:
    key = new_key()
    rec = KeyRecord(
        id="key_" + secrets.token_hex(6),
        hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 6],
        name=name,
        team=team,
        app=app,
        created_at=time.time(),
        expires_at=expires_at,
        revoked_at=None,
        replaced_by=None,
        limits=limits,
        admin=admin,
    )
    return key, rec


def _params(r: KeyRecord) -> tuple[object, ...]:
    return (
        r.id,
        r.hash,
        r.prefix,
        r.name,
        r.team,
        r.app,
        r.created_at,
        r.expires_at,
        r.revoked_at,
        r.replaced_by,
        *limits_store.to_row(r.limits),
        int(r.admin),
    )


async def create(
    db: Database,
    *,
    team: str,
    app: str | None = None,
    name: str | None = None,
    expires_at: float | None = None,
    limits: Limits = NO_LIMITS,
    admin: bool = False,
) -> tuple[str, KeyRecord]:
    """Create a key; returns (the key itself, its record). The key is not stored.

    An admin key (``admin=True``) belongs to :data:`ADMIN_TEAM` and has no limits."""
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

    def work(conn: sqlite3.Connection) -> None:
        conn.execute(_INSERT, _params(rec))
        append_audit(conn, [admin_event("keys.create", rec.id, after=rec)], db.sealer)

    await db.batch(work)
    return key, rec


def _get_in(conn: sqlite3.Connection, key_id: str) -> KeyRecord:
    """A key read inside a write transaction (its before or after, for the audit)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        raise KeyNotFound(f"no key with id {key_id!r} (see `aigw keys list`)")
    return _record(row)


async def _change(
    db: Database, key_id: str, action: str, sql: str, params: tuple[object, ...]
) -> KeyRecord:
    """One UPDATE of a key and its audit event (before/after), in one transaction."""

    def work(conn: sqlite3.Connection) -> None:
        before = _get_in(conn, key_id)
        conn.execute(sql, params)
        after = _get_in(conn, key_id)
        if after != before:
            event = admin_event(action, key_id, before=before, after=after)
            append_audit(conn, [event], db.sealer)

    await db.batch(work)
    return await get(db, key_id)


async def get(db: Database, key_id: str) -> KeyRecord:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,))
    if row is None:
        raise KeyNotFound(f"no key with id {key_id!r} (see `aigw keys list`)")
    return _record(row)


async def find_by_hash(db: Database, key_hash: str) -> KeyRecord | None:
    """The key whose sha256 is ``key_hash``, in any state; None if there is none."""
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM keys WHERE hash = ?", (key_hash,))
    return None if row is None else _record(row)


async def list_all(db: Database) -> list[KeyRecord]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} FROM keys ORDER BY created_at")
    return [_record(r) for r in rows]


async def revoke(db: Database, key_id: str) -> KeyRecord:
    return await _change(
        db,
        key_id,
        "keys.revoke",
        "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (time.time(), key_id),
    )


async def rotate(db: Database, key_id: str, *, grace: float) -> tuple[str, KeyRecord, KeyRecord]:
    """Issue a replacement key; the old one stops working after ``grace`` seconds.

    Returns (new key, new record, old record as updated).
    """
    old = await get(db, key_id)
    now = time.time()
    if old.state(now) != "active":
        raise AigwError(f"key {key_id} is {old.state(now)}; only an active key can be rotated")
    # The replacement inherits the old key's limits (its budget spend starts afresh,
    # since spend is counted per key id).
    key, rec = _new_record(
        team=old.team,
        app=old.app,
        name=old.name,
        expires_at=old.expires_at,
        limits=old.limits,
        admin=old.admin,
    )
    until = now + grace
    # The old key ends at the grace deadline, or sooner if it was already due to expire.
    old_end = until if old.expires_at is None else min(old.expires_at, until)

    def work(conn: sqlite3.Connection) -> None:
        before = _get_in(conn, old.id)
        conn.execute(_INSERT, _params(rec))
        conn.execute(
            "UPDATE keys SET expires_at = ?, replaced_by = ? WHERE id = ?",
            (old_end, rec.id, old.id),
        )
        after = _get_in(conn, old.id)
        event = admin_event("keys.rotate", old.id, before=before, after={"old": after, "new": rec})
        append_audit(conn, [event], db.sealer)

    await db.batch(work)
    return key, rec, await get(db, key_id)


async def set_limits(db: Database, key_id: str, limits: Limits) -> KeyRecord:
    """Replace a key's own limits; returns the updated record."""
    validate_limits(limits)
    if (await get(db, key_id)).admin and not limits.empty:
        raise AigwError("an admin key makes no proxied calls, so it takes no limits")
    assignments = ", ".join(f"{c} = ?" for c in LIMIT_FIELDS)
    return await _change(
        db,
        key_id,
        "keys.update",
        f"UPDATE keys SET {assignments} WHERE id = ?",
        (*limits_store.to_row(limits), key_id),
    )


async def generation(db: Database) -> int:
    """A number that changes whenever any key or team changes."""
    row = await db.fetchone("SELECT value FROM generation WHERE id = 1")
    return int(row[0]) if row else 0
