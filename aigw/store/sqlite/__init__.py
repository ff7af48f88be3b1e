"""The SQLite backend (the default): one WAL-mode file holds all the state.

The SQL lives in one module per table group (``keys``, ``teams``, ``ledger``,
``limits``, ``audit``) as functions over a :class:`~aigw.store.sqlite.db.Database`; the
classes here bind them to one database so they satisfy the protocols of
:mod:`aigw.store.base`. Code that runs outside the gateway (the CLI, tests) may
call the functions directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from types import EllipsisType
from typing import Any

import aigw.store.sqlite.audit as audit_sql
import aigw.store.sqlite.cache as cache_sql
import aigw.store.sqlite.dashboard as dash_sql
import aigw.store.sqlite.keys as keys_sql
import aigw.store.sqlite.ledger as ledger_sql
import aigw.store.sqlite.limits as limits_sql
import aigw.store.sqlite.teams as teams_sql
from aigw.cache.entry import CacheStats, Entry
from aigw.model import (
    NO_LIMITS,
    AlertRow,
    AuditBody,
    AuditEvent,
    KeyRecord,
    LedgerRecord,
    LedgerRow,
    Limits,
    ReportRow,
    SpendRow,
    TeamRecord,
)
from aigw.store.sqlite.db import Database


class SQLiteKeys:
    """:class:`~aigw.store.base.KeyStore` over one database."""

    def __init__(self, db: Database) -> None:
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
        return await keys_sql.create(
            self.db,
            team=team,
            app=app,
            name=name,
            expires_at=expires_at,
            limits=limits,
            admin=admin,
        )

    async def get(self, key_id: str) -> KeyRecord:
        return await keys_sql.get(self.db, key_id)

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        return await keys_sql.find_by_hash(self.db, key_hash)

    async def list_all(self) -> list[KeyRecord]:
        return await keys_sql.list_all(self.db)

    async def revoke(self, key_id: str) -> KeyRecord:
        return await keys_sql.revoke(self.db, key_id)

    async def rotate(self, key_id: str, *, grace: float) -> tuple[str, KeyRecord, KeyRecord]:
        return await keys_sql.rotate(self.db, key_id, grace=grace)

    async def set_limits(self, key_id: str, limits: Limits) -> KeyRecord:
        return await keys_sql.set_limits(self.db, key_id, limits)

    async def generation(self) -> int:
        return await keys_sql.generation(self.db)


class SQLiteTeams:
    """:class:`~aigw.store.base.TeamStore` over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, limits: Limits = NO_LIMITS) -> TeamRecord:
        return await teams_sql.create(self.db, name, limits)

    async def get(self, name: str) -> TeamRecord:
        return await teams_sql.get(self.db, name)

    async def find(self, name: str) -> TeamRecord | None:
        return await teams_sql.find(self.db, name)

    async def list_all(self) -> list[TeamRecord]:
        return await teams_sql.list_all(self.db)

    async def update(
        self, name: str, limits: Limits, *, body_retention: float | EllipsisType | None = ...
    ) -> TeamRecord:
        return await teams_sql.update(self.db, name, limits, body_retention=body_retention)

    async def remove(self, name: str) -> None:
        await teams_sql.remove(self.db, name)

    async def key_counts(self, now: float) -> dict[str, int]:
        return await teams_sql.key_counts(self.db, now)


class SQLiteLedger:
    """:class:`~aigw.store.base.LedgerSink` and :class:`~aigw.store.base.LedgerQueries`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append_many(self, rows: Sequence[LedgerRecord]) -> None:
        await ledger_sql.append_many(self.db, rows)

    async def summarize(
        self, *, by: str, since: float | None, until: float | None
    ) -> list[ReportRow]:
        return await ledger_sql.summarize(self.db, by=by, since=since, until=until)

    async def by_request_id(self, request_id: str) -> list[LedgerRow]:
        return await ledger_sql.by_request_id(self.db, request_id)

    async def unpriced_models(self, since: float | None) -> list[tuple[str, str, int]]:
        return await ledger_sql.unpriced_models(self.db, since)

    async def spend_of(self, scope: str, name: str, start: float, end: float) -> tuple[int, int]:
        return await limits_sql.spend_of(self.db, scope, name, start, end)

    async def alert_history(self, scope: str, name: str, period: str) -> list[AlertRow]:
        return await limits_sql.alert_history(self.db, scope, name, period)


class SQLiteLimitState:
    """:class:`~aigw.store.base.LimitState` over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load_counters(self, now: float) -> dict[str, tuple[float, float]]:
        return await limits_sql.load_counters(self.db, now)

    async def save_counters(
        self, busy: Sequence[tuple[str, float, float]], idle: Sequence[str]
    ) -> None:
        await limits_sql.save_counters(self.db, busy, idle)

    async def spend_between(self, start: float, end: float) -> list[SpendRow]:
        return await limits_sql.spend_between(self.db, start, end)

    async def load_alerts(self, periods: Sequence[str]) -> list[AlertRow]:
        return await limits_sql.load_alerts(self.db, periods)

    async def save_alerts(self, alerts: Sequence[AlertRow]) -> None:
        await limits_sql.save_alerts(self.db, alerts)


class SQLiteCache:
    """:class:`~aigw.store.base.CacheTable` over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> Entry | None:
        return await cache_sql.get(self.db, key)

    async def put_many(
        self, entries: Sequence[Entry], touches: Sequence[tuple[float, str]]
    ) -> None:
        await cache_sql.put_many(self.db, entries, touches)

    async def delete(self, keys: Sequence[str]) -> None:
        await cache_sql.delete(self.db, keys)

    async def total_size(self) -> int:
        return await cache_sql.total_size(self.db)

    async def evict(self, target: int) -> tuple[int, list[str]]:
        return await cache_sql.evict(self.db, target)

    async def purge_expired(self, now: float) -> int:
        return await cache_sql.purge_expired(self.db, now)

    async def clear(self, *, team: str | None, model: str | None, now: float) -> int:
        return await cache_sql.clear(self.db, team=team, model=model, now=now)

    async def clears_since(self, last: int) -> list[tuple[int, str | None, str | None]]:
        return await cache_sql.clears_since(self.db, last)

    async def last_clear(self) -> int:
        return await cache_sql.last_clear(self.db)

    async def stats(self, now: float) -> list[CacheStats]:
        return await cache_sql.stats(self.db, now)


class SQLiteAudit:
    """:class:`~aigw.store.base.AuditLog` over one database."""

    def __init__(self, db: Database) -> None:
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


class SQLiteDashboard:
    """:class:`~aigw.store.base.DashboardQueries` over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def series(
        self, since: float, until: float, bucket: float, team: str | None
    ) -> list[dash_sql.Point]:
        return await dash_sql.series(self.db, since, until, bucket, team)

    async def team_extras(self, since: float, until: float) -> dict[str, dash_sql.TeamExtras]:
        return await dash_sql.team_extras(self.db, since, until)

    async def team_groups(
        self, by: str, team: str, since: float, until: float, limit: int = 10
    ) -> list[ReportRow]:
        return await dash_sql.team_groups(self.db, by, team, since, until, limit)


class SQLiteStore:
    """:class:`~aigw.store.base.Store`: every protocol over one state file."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.keys = SQLiteKeys(db)
        self.teams = SQLiteTeams(db)
        ledger = SQLiteLedger(db)
        self.ledger = ledger
        self.reports = ledger
        self.limit_state = SQLiteLimitState(db)
        self.cache = SQLiteCache(db)
        self.audit = SQLiteAudit(db)
        self.dashboard = SQLiteDashboard(db)
        self.kind = "sqlite"

    async def readiness(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(2):
                await self.db.fetchone("SELECT 1")
        except Exception as exc:
            return {"database": f"failing: {type(exc).__name__}"}
        return {"database": "ok"}

    def services(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        return []  # the WAL checkpoints and retention run from aigw.app (SQLite's own)

    async def listen(self, changed: Callable[[], None]) -> None:
        return  # SQLite cannot announce changes: the directory's polling sees them

    async def close(self) -> None:
        await self.db.close()
