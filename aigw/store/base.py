"""What the rest of aigw needs from storage, as protocols a backend implements.

SQLite (``aigw.store.sqlite``) is the default backend; PostgreSQL
(``aigw.store.postgres``) is the one several processes share. Each protocol is one
concern, so a backend can implement some and leave the others to another. Records are the
plain values of :mod:`aigw.model`. Lookups that miss raise
:class:`~aigw.model.KeyNotFound` / :class:`~aigw.model.TeamNotFound` unless they say
they return None.

The hot path reads none of these per request: keys, teams, counters and budget
totals are loaded at start and kept in memory (the directory and the limits
engine), the ledger is appended through :class:`~aigw.store.writer.GroupWriter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from types import EllipsisType
from typing import Any, Protocol

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
from aigw.store.sqlite.dashboard import Point, TeamExtras


class KeyStore(Protocol):
    """Gateway keys. Only a hash of each key is stored (:func:`aigw.model.hash_key`)."""

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
        """A new key: (the key itself, shown once; its record). An admin key's team is
        :data:`aigw.model.ADMIN_TEAM` whatever ``team`` says."""
        ...

    async def get(self, key_id: str) -> KeyRecord: ...

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash in any state (active, revoked, expired), or None."""
        ...

    async def list_all(self) -> list[KeyRecord]: ...

    async def revoke(self, key_id: str) -> KeyRecord: ...

    async def rotate(self, key_id: str, *, grace: float) -> tuple[str, KeyRecord, KeyRecord]:
        """A replacement key; the old one ends after ``grace`` seconds.

        Returns (new key, new record, old record as updated), atomically.
        """
        ...

    async def set_limits(self, key_id: str, limits: Limits) -> KeyRecord: ...

    async def generation(self) -> int:
        """A number that changes whenever any key or team changes (for watchers)."""
        ...


class TeamStore(Protocol):
    """Teams: named limits shared by every key naming the team."""

    async def create(self, name: str, limits: Limits = NO_LIMITS) -> TeamRecord: ...

    async def get(self, name: str) -> TeamRecord: ...

    async def find(self, name: str) -> TeamRecord | None: ...

    async def list_all(self) -> list[TeamRecord]: ...

    async def update(
        self, name: str, limits: Limits, *, body_retention: float | EllipsisType | None = ...
    ) -> TeamRecord:
        """Replace the team's limits (the caller merges with the current ones) and, when
        given, how long the audit log keeps its bodies (seconds; None: not kept)."""
        ...

    async def remove(self, name: str) -> None: ...

    async def key_counts(self, now: float) -> dict[str, int]:
        """Active keys per team name, including teams that have no record."""
        ...


class LedgerSink(Protocol):
    """Where the ledger's group commits go."""

    async def append_many(self, rows: Sequence[LedgerRecord]) -> None:
        """Commit ``rows`` (ledger rows, audit events, audit bodies) atomically: all of
        them or none (then raise). Audit events are chained in the same transaction."""
        ...


class LedgerQueries(Protocol):
    """What reports, the CLI and the budget view read from the ledger."""

    async def summarize(
        self, *, by: str, since: float | None, until: float | None
    ) -> list[ReportRow]:
        """Totals per group (one of :data:`aigw.model.REPORT_GROUPS`), exact integers."""
        ...

    async def by_request_id(self, request_id: str) -> list[LedgerRow]: ...

    async def unpriced_models(self, since: float | None) -> list[tuple[str, str, int]]:
        """(provider, upstream model, calls) of answered calls recorded with no price."""
        ...

    async def spend_of(self, scope: str, name: str, start: float, end: float) -> tuple[int, int]:
        """(cost nano-USD, unpriced calls) of one team or key in [start, end)."""
        ...

    async def alert_history(self, scope: str, name: str, period: str) -> list[AlertRow]:
        """The budget alerts one team or key fired in one period, oldest first."""
        ...


class DashboardQueries(Protocol):
    """What the dashboard reads beyond the report's totals (:mod:`aigw.web.dashboard`)."""

    async def series(
        self, since: float, until: float, bucket: float, team: str | None
    ) -> list[Point]: ...

    async def team_extras(self, since: float, until: float) -> dict[str, TeamExtras]: ...

    async def team_groups(
        self, by: str, team: str, since: float, until: float, limit: int = 10
    ) -> list[ReportRow]: ...


class LimitState(Protocol):
    """The limits engine's persistence: read at start, written in batches and at exit."""

    async def load_counters(self, now: float) -> dict[str, tuple[float, float]]:
        """bucket id -> (tat, interval) of rate buckets not yet full again at ``now``."""
        ...

    async def save_counters(
        self, busy: Sequence[tuple[str, float, float]], idle: Sequence[str]
    ) -> None:
        """Write ``busy`` buckets (id, tat, interval) and forget ``idle`` ones."""
        ...

    async def spend_between(self, start: float, end: float) -> list[SpendRow]:
        """Ledger cost (and unpriced answered calls) per (team, key) of calls that
        started in [start, end): exact, also over pruned raw rows (rollups)."""
        ...

    async def load_alerts(self, periods: Sequence[str]) -> list[AlertRow]:
        """Alerts fired in any of ``periods`` (period ids such as 'month:2026-11-01')."""
        ...

    async def save_alerts(self, alerts: Sequence[AlertRow]) -> None:
        """Remember fired alerts; one already remembered is ignored."""
        ...


class CacheTable(Protocol):
    """The response cache's answers (:mod:`aigw.cache.store` keeps a memory front)."""

    async def get(self, key: str) -> Entry | None: ...

    async def put_many(
        self, entries: Sequence[Entry], touches: Sequence[tuple[float, str]]
    ) -> None:
        """Store answers and note (last_used, key) of others, in one transaction."""
        ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def total_size(self) -> int: ...

    async def evict(self, target: int) -> tuple[int, list[str]]:
        """Least recently used out until at most ``target`` bytes: (bytes left, keys)."""
        ...

    async def purge_expired(self, now: float) -> int: ...

    async def clear(self, *, team: str | None, model: str | None, now: float) -> int: ...

    async def clears_since(self, last: int) -> list[tuple[int, str | None, str | None]]: ...

    async def last_clear(self) -> int: ...

    async def stats(self, now: float) -> list[CacheStats]: ...


class AuditLog(Protocol):
    """The audit trail's reads (events are written with the ledger's group commit or an
    admin change, chained in the same transaction) and its stand-alone appends."""

    async def append(self, events: Sequence[AuditEvent]) -> None:
        """Chain and commit events that come with no other row (a start, a CLI change)."""
        ...

    async def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last event; None while the trail is empty."""
        ...

    def chain(self, *, upto: int | None = None) -> AsyncIterator[AuditEvent]:
        """Every event in seq order (up to seq ``upto``)."""
        ...

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        team: str | None = None,
        key_id: str | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]: ...

    async def count(self, *, since: float | None = None) -> int: ...

    def pages(self, *, since: float | None = None) -> AsyncIterator[list[AuditEvent]]: ...

    async def by_request_id(self, request_id: str) -> list[AuditEvent]: ...

    async def bodies_of(self, request_id: str, now: float) -> list[AuditBody]: ...

    async def prune_bodies(self, now: float) -> int: ...


class Store(Protocol):
    """A whole backend: one object per state file (or database URL)."""

    @property
    def keys(self) -> KeyStore: ...

    @property
    def teams(self) -> TeamStore: ...

    @property
    def ledger(self) -> LedgerSink: ...

    @property
    def reports(self) -> LedgerQueries: ...

    @property
    def limit_state(self) -> LimitState: ...

    @property
    def cache(self) -> CacheTable: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def dashboard(self) -> DashboardQueries: ...

    @property
    def kind(self) -> str:
        """ "sqlite" or "postgresql"."""
        ...

    async def readiness(self) -> dict[str, Any]:
        """The store's part of ``/readyz``: at least ``database`` ("ok", "degraded: ...",
        or "failing: ..."), maybe more (``spooled``: ledger batches waiting)."""
        ...

    def services(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """Background tasks the backend needs while serving: (name, coroutine)."""
        ...

    async def listen(self, changed: Callable[[], None]) -> None:
        """Call ``changed`` whenever a key or team changes, from any process, until
        cancelled; return at once when the backend cannot announce changes (the
        directory polls anyway)."""
        ...

    async def close(self) -> None: ...
