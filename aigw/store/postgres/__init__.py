"""The PostgreSQL backend: several gateway processes (and machines) share one database.

Everything :mod:`aigw.store.base` asks for, with what several processes need on top:
migrations under an advisory lock (:mod:`.db`), one audit chain serialized by a row
lock on its head (:mod:`.audit`), group commits that carry their own batch id and
fall back to a local spool while the server is away (:mod:`.spool`), and a
``NOTIFY`` on every key and team change so every directory reloads at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import asyncpg

import aigw.store.postgres.audit as audit_sql
from aigw.config.ledger import LedgerConfig
from aigw.model import AuditBody, AuditEvent
from aigw.retention import retention_forever
from aigw.store.postgres.cache import PgCache
from aigw.store.postgres.dashboard import PgDashboard
from aigw.store.postgres.db import PgDatabase, open_postgres
from aigw.store.postgres.keys import PgKeys, PgTeams
from aigw.store.postgres.ledger import PgLedger
from aigw.store.postgres.spool import UNAVAILABLE, SpoolingLedger

__all__ = ["PgDatabase", "PostgresStore", "open_postgres"]

log = logging.getLogger("aigw.store")

CHANNEL = "aigw_directory"
LISTEN_RETRY_SECONDS = 1.0


class PgAudit:
    """:class:`~aigw.store.base.AuditLog` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def append(self, events: Sequence[AuditEvent]) -> None:
        await audit_sql.append(self.db, events)

    async def head(self) -> tuple[int, str] | None:
        return await audit_sql.head(self.db)

    def chain(self, *, upto: int | None = None) -> AsyncIterator[AuditEvent]:
        return audit_sql.chain(self.db, upto=upto)

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        team: str | None = None,
        key_id: str | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        return await audit_sql.query(
            self.db,
            since=since,
            until=until,
            team=team,
            key_id=key_id,
            after_seq=after_seq,
            limit=limit,
        )

    async def count(self, *, since: float | None = None) -> int:
        return await audit_sql.count(self.db, since=since)

    def pages(self, *, since: float | None = None) -> AsyncIterator[list[AuditEvent]]:
        return audit_sql.pages(self.db, since=since)

    async def by_request_id(self, request_id: str) -> list[AuditEvent]:
        return await audit_sql.by_request_id(self.db, request_id)

    async def bodies_of(self, request_id: str, now: float) -> list[AuditBody]:
        return await audit_sql.bodies_of(self.db, request_id, now)

    async def prune_bodies(self, now: float) -> int:
        return await audit_sql.prune_bodies(self.db, now)


class PostgresStore:
    """:class:`~aigw.store.base.Store` on one PostgreSQL database.

    ``spool``: the local file group commits go to while the server is unreachable
    (None: a commit that cannot reach it fails, as the CLI wants). ``synchronous``:
    ``[ledger] synchronous`` ("normal": group commits do not wait for the WAL flush).
    ``retention``: the ``[ledger]`` settings whose ``keep_rows`` and ``keep_rollups``
    a serving process applies in the background (None: no retention task).
    """

    kind = "postgresql"

    def __init__(
        self,
        db: PgDatabase,
        spool: Path | None = None,
        *,
        synchronous: str = "full",
        retention: LedgerConfig | None = None,
    ) -> None:
        self.db = db
        self.retention = retention
        self.keys = PgKeys(db)
        self.teams = PgTeams(db)
        self.queries = PgLedger(db, synchronous=synchronous)
        self.reports = self.queries
        self.limit_state = self.queries
        self.spool = None if spool is None else SpoolingLedger(self.queries, spool)
        self.ledger = self.queries if self.spool is None else self.spool
        self.cache = PgCache(db)
        self.audit = PgAudit(db)
        self.dashboard = PgDashboard(db)

    async def readiness(self) -> dict[str, Any]:
        spooled = self.spool.spooled if self.spool is not None else 0
        try:
            async with asyncio.timeout(2):
                await self.db.fetchrow("SELECT 1")
            state = "ok"
        except Exception as exc:
            state = f"failing: {type(exc).__name__}"
        if spooled or (state != "ok" and self.spool is not None):
            # Requests are still served: their ledger rows wait in the local spool.
            state = f"degraded: PostgreSQL {'unreachable' if state != 'ok' else 'back'}, " + (
                f"{spooled} ledger batches spooled locally"
            )
        return {"database": state, "spooled": spooled}

    def services(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        tasks: list[tuple[str, Coroutine[Any, Any, None]]] = []
        if self.spool is not None:
            tasks.append(("ledger-spool", self.spool.run()))
        if self.retention is not None:
            # Every process runs it: the deletes are idempotent and in small batches.
            tasks.append(("ledger-retention", retention_forever(self.queries, self.retention)))
        return tasks

    async def listen(self, changed: Callable[[], None]) -> None:
        """LISTEN on the directory channel (one dedicated connection), reconnecting
        after a failure; the directory's polling covers the gaps."""
        while True:
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self.db.url,
                    password=self.db.password,
                    server_settings={"application_name": self.db.application_name},
                )
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda *_args: changed())
                changed()  # changes made while we were not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.debug("LISTEN %s failed (%s); retrying", CHANNEL, exc)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close(timeout=2)
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def close(self) -> None:
        if self.spool is not None:
            try:
                await self.spool.close()
            except Exception:
                log.warning(
                    "could not replay the ledger spool at exit; it replays at the next start"
                )
        await self.db.close()
