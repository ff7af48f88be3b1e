"""The PostgreSQL connection pool: open, migrate under an advisory lock, close.

asyncpg, not psycopg 3: it is asyncio-native and needs no libpq on the machine (its
wheels carry everything), speaks the binary protocol (the ledger's group commit sends
its rows as binary arrays), and has COPY and LISTEN/NOTIFY built in.

Several processes may start at once against one database: migrations run while
holding a session advisory lock, each in its own transaction and recorded in
``_migrations``, so exactly one process applies each and the others wait, then see it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from aigw.audit import Sealer
from aigw.errors import StoreError
from aigw.store.postgres.migrations import MIGRATIONS

PASSWORD_ENV = "AIGW_STORE_PASSWORD"
KEYRING_USER = "store"  # service "aigw", like provider keys
# pg_advisory_lock key for migrations: any constant all aigw processes agree on.
MIGRATION_LOCK = 0x61696777  # "aigw"
# A stop waits this long for connections still in use, then closes them anyway:
# asyncpg's graceful close waits for every release, with no limit of its own.
CLOSE_SECONDS = 10.0

log = logging.getLogger("aigw.store")


def redact(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = parts.username or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def store_password() -> str | None:
    """The store's password: $AIGW_STORE_PASSWORD, the systemd credential aigw-store,
    then the OS keyring (service aigw, user store). None: asyncpg then uses
    $PGPASSWORD or ~/.pgpass itself (or none: trust or peer auth)."""
    value = os.environ.get(PASSWORD_ENV, "")
    if value:
        return value
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        try:
            value = (Path(cred_dir) / "aigw-store").read_text().strip()
        except OSError:
            value = ""
        if value:
            return value
    from aigw import secrets

    return secrets._keyring_get(KEYRING_USER)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing. asyncpg's default sends ``RESET ALL``,
    ``UNLISTEN *``, ``CLOSE ALL`` and an advisory unlock on every release, a round trip
    per group commit; aigw's pooled connections never change session state (``SET
    LOCAL`` ends with its transaction, the migration lock is released in ``finally``,
    LISTEN has its own connection). An open transaction is still rolled back: asyncpg
    does that before calling this."""


# The application_name of a serving gateway's connections: `aigw restore` refuses while
# one is connected (pg_stat_activity shows them).
SERVING = "aigw serve"


class PgDatabase:
    """A pool over one PostgreSQL database, and the audit sealer of this process."""

    def __init__(
        self,
        url: str,
        pool: asyncpg.Pool,
        password: str | None = None,
        application_name: str = "aigw",
    ) -> None:
        self.url = url
        self.pool = pool
        self.password = password
        self.application_name = application_name
        self.sealer = Sealer()

    async def close(self) -> None:
        try:
            # On a timeout the pool terminates its connections (asyncpg does that
            # itself when close() is cancelled).
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.pool.close()
        except TimeoutError:
            log.warning(
                "PostgreSQL connections still in use after %g s; closed them", CLOSE_SECONDS
            )

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(sql, *args)
        return row

    async def execute(self, sql: str, *args: Any) -> int:
        """One statement (autocommit); returns the rows it changed."""
        status: str = await self.pool.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


async def _migrate(conn: asyncpg.Connection, url: str) -> None:
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations "
            "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        applied = {r[0] for r in await conn.fetch("SELECT name FROM _migrations")}
        unknown = applied - {name for name, _ in MIGRATIONS}
        if unknown:
            raise StoreError(
                f"{redact(url)}: written by a newer aigw (unknown migrations: "
                f"{', '.join(sorted(unknown))}); upgrade aigw to use it"
            )
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES ($1, $2)", name, time.time()
                )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def open_postgres(
    url: str,
    *,
    max_size: int = 10,
    connect_timeout: float = 10.0,
    application_name: str = "aigw",
) -> PgDatabase:
    """Connect to ``url``, migrate, and return the pool; StoreError (password-free)
    when the server cannot be reached or refuses. ``application_name``: what
    pg_stat_activity shows (:data:`SERVING` for a serving gateway)."""
    password = store_password()
    try:
        pool = await asyncpg.create_pool(
            url,
            password=password,
            min_size=1,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=60,
            server_settings={"application_name": application_name},
            reset=_keep_session,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreError(f"{redact(url)}: cannot open the PostgreSQL store: {exc}") from exc
    try:
        async with pool.acquire() as conn:
            await _migrate(conn, url)
    except asyncpg.PostgresError as exc:
        await pool.close()
        raise StoreError(f"{redact(url)}: migrating the PostgreSQL store failed: {exc}") from exc
    except BaseException:
        await pool.close()
        raise
    return PgDatabase(url, pool, password, application_name)
