"""Domain records: what the store returns and takes, whatever the backend.

Plain values, no I/O: gateway keys, teams and their limits, ledger rows and the
rows the limits engine and the reports read. A leaf module (it imports nothing of
aigw but the error types), so the store, the limits engine, the pipeline and the CLI
can all name these types without importing one another.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from aigw.errors import AigwError

# -- limits --------------------------------------------------------------------------

PERIODS = ("day", "week", "month")
PRIORITIES = ("high", "normal", "low")
# What scrubbing does with what a detector finds (aigw.scrub.redact).
SCRUB_ACTIONS = ("redact", "block", "log", "off")

LIMIT_FIELDS = (
    "rpm",
    "tpm",
    "max_parallel",
    "budget_nusd",
    "period",
    "alert_at",
    "priority",
    "models",
    "regions",
    "cache",
    "cache_ttl",
    "scrub",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits, budget, priority and model globs of one team or key.

    The same for a team and a key; ``None`` in a field means "no limit" (for
    ``period`` and ``alert_at``: "the ``[budgets]`` default").
    """

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_nusd: int | None = None
    period: str | None = None
    alert_at: tuple[int, ...] | None = None  # () = alerts off
    priority: str | None = None
    models: tuple[str, ...] | None = None
    # Data residency: only providers whose region is one of these (None: any provider).
    regions: tuple[str, ...] | None = None
    # Response cache: off | deterministic | all, and seconds an answer is kept (None:
    # the team's, else [cache]). The narrowest scope wins: key, then team, then config.
    cache: str | None = None
    cache_ttl: int | None = None
    # Scrub actions overriding the config's, per detector: (("email", "block"), ...).
    scrub: tuple[tuple[str, str], ...] | None = None
    # Precomputed: admission asks on every request.
    empty: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        empty = all(getattr(self, name) is None for name in LIMIT_FIELDS)
        object.__setattr__(self, "empty", empty)

    def replace(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied (``None`` removes a limit)."""
        values = {name: getattr(self, name) for name in LIMIT_FIELDS}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown limit fields: {', '.join(sorted(unknown))}")
        values.update(changes)
        return Limits(**values)


NO_LIMITS = Limits()  # shared, so the hot path can test it by identity


def validate_limits(limits: Limits) -> Limits:
    """Raise AigwError when a value is out of range; returns ``limits``."""
    for name in ("rpm", "tpm", "max_parallel"):
        value = getattr(limits, name)
        if value is not None and value < 1:
            raise AigwError(f"{name.replace('_', '-')} must be at least 1 (got {value})")
    if limits.budget_nusd is not None and limits.budget_nusd < 0:
        raise AigwError("a budget cannot be negative")
    if limits.period is not None and limits.period not in PERIODS:
        raise AigwError(f"period must be one of {', '.join(PERIODS)} (got {limits.period!r})")
    if limits.priority is not None and limits.priority not in PRIORITIES:
        raise AigwError(
            f"priority must be one of {', '.join(PRIORITIES)} (got {limits.priority!r})"
        )
    for pct in limits.alert_at or ():
        if not 1 <= pct <= 100:
            raise AigwError(f"alert thresholds are percents from 1 to 100 (got {pct})")
    for glob in limits.models or ():
        if not glob or "," in glob:
            raise AigwError(f"not a model glob: {glob!r}")
    if limits.cache is not None and limits.cache not in ("off", "deterministic", "all"):
        raise AigwError(f"cache must be off, deterministic or all (got {limits.cache!r})")
    if limits.cache_ttl is not None and limits.cache_ttl < 0:
        raise AigwError(f"cache-ttl cannot be negative (got {limits.cache_ttl})")
    for detector, action in limits.scrub or ():
        if action not in SCRUB_ACTIONS:
            raise AigwError(
                f"scrub action for {detector} must be one of {', '.join(SCRUB_ACTIONS)} "
                f"(got {action!r})"
            )
    if limits.regions is not None:
        if not limits.regions:
            raise AigwError("give at least one region (or none for no restriction)")
        for region in limits.regions:
            problem = region_problem(region)
            if problem is not None:
                raise AigwError(problem)
    return limits


_REGION = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def region_problem(region: str) -> str | None:
    """Why ``region`` cannot name a region (compared lower-cased), or None."""
    if not _REGION.fullmatch(region.lower()):
        return (
            f"not a region: {region!r} (1-64 letters, digits, '.', '_' or '-', "
            "e.g. eu, us, eu-west)"
        )
    return None


# -- keys ----------------------------------------------------------------------------

KEY_PREFIX = "gw-"
# The team every admin key names: reserved, so no team key or team record can take it.
ADMIN_TEAM = "(admin)"


class KeyNotFound(AigwError):
    pass


@dataclass(slots=True, frozen=True)
class KeyRecord:
    """A gateway key as stored: only a sha256 of the key itself is kept."""

    id: str
    hash: str
    prefix: str
    name: str | None
    team: str
    app: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    replaced_by: str | None
    # The key's own limits; its team's limits apply as well.
    limits: Limits = NO_LIMITS
    # An admin key opens the dashboard and admin endpoints and makes no proxied calls;
    # its team is ADMIN_TEAM.
    admin: bool = False

    def state(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired`` at time ``now``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def hash_key(key: str) -> str:
    """How every backend stores and looks up a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


# -- teams ---------------------------------------------------------------------------


class TeamNotFound(AigwError):
    pass


@dataclass(frozen=True, slots=True)
class TeamRecord:
    """Named limits shared by every key of the team.

    A key names its team as free text; a team record is optional. A key whose team
    has no record is limited only by its own limits.
    """

    name: str
    limits: Limits
    created_at: float
    updated_at: float
    # Seconds to keep prompt and answer bodies in the audit log; None: not logged.
    body_retention: float | None = None


def check_team_name(name: str) -> str:
    """A team name as typed, or AigwError when it cannot be one."""
    if not name or name != name.strip() or any(ch.isspace() or ord(ch) < 32 for ch in name):
        raise AigwError(f"not a team name: {name!r} (no spaces or control characters)")
    if len(name) > 100:
        raise AigwError("a team name has at most 100 characters")
    if name == ADMIN_TEAM:
        raise AigwError(f"{ADMIN_TEAM!r} is reserved for admin keys (aigw keys create --admin)")
    return name


# -- the ledger ----------------------------------------------------------------------


@dataclass(slots=True)
class LedgerRow:
    """One call, as the cost ledger records it."""

    ts: float
    request_id: str
    key_id: str | None
    team: str | None
    app: str | None
    endpoint: str
    model: str | None
    provider: str | None
    upstream_model: str | None
    status: int
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    usage_estimated: bool
    cost_nusd: int | None  # None: no price known for the model
    latency_ms: int
    error: str | None
    upstream_request_id: str | None = None  # the provider's own id (request-id header)
    attempts: int = 0  # upstream attempts made (failover and retries included)
    # JSON: the failed attempts and skipped targets ({"failed": [..], "skipped": [..]}).
    routing: str | None = None
    # The response cache: "hit" | "miss" | "bypass", None when the cache is off. A hit
    # costs nothing (cost_nusd 0) and saves what the original call cost (saved_nusd).
    cache: str | None = None
    saved_nusd: int = 0


@dataclass(slots=True)
class AuditEvent:
    """One audit event: a proxied call (``kind="proxy"``) or an admin change
    (``kind="admin"``). The chain fields (seq, alg, prev_hash, hash) are filled when it
    is written (:mod:`aigw.audit`); JSON fields are kept as their text."""

    ts: float
    kind: str  # proxy | admin
    request_id: str | None = None
    key_id: str | None = None
    team: str | None = None
    app: str | None = None
    endpoint: str | None = None
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    status: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_nusd: int | None = None
    error: str | None = None
    scrub: str | None = None  # JSON {detector: count}
    actor: str | None = None  # OS user@host
    action: str | None = None  # keys.create, teams.update, providers.set-key, ...
    target: str | None = None
    before: str | None = None  # JSON, secrets left out
    after: str | None = None
    seq: int = 0
    alg: str = ""
    prev_hash: str = ""
    hash: str = ""


@dataclass(slots=True)
class AuditBody:
    """A prompt and answer kept for a team that opted in, until ``expires_at``."""

    request_id: str
    team: str | None
    ts: float
    expires_at: float
    request: str | None
    answer: str | None


# What the ledger's group commit writes: a call's row, its audit event and its bodies
# (an unauthenticated refusal has only an event).
LedgerRecord = LedgerRow | AuditEvent | AuditBody


# What a report can group the ledger by.
REPORT_GROUPS = ("team", "app", "key", "model", "provider", "day")


@dataclass(slots=True)
class ReportRow:
    """Ledger totals of one group."""

    name: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_nusd: int
    unpriced: int
    cache_hits: int = 0  # rows with cache = 'hit' (answered from the response cache)
    cache_misses: int = 0  # rows with cache = 'miss'
    saved_nusd: int = 0  # what the hits would have cost

    @property
    def cache_hit_rate(self) -> float | None:
        """Hits over cache lookups (hits + misses); None when the cache was not asked."""
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else None


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Ledger cost of one (team, key) pair over a time range."""

    team: str | None
    key_id: str | None
    cost_nusd: int
    unpriced: int = 0  # answered calls (status < 400) with no known price


# -- limit state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRow:
    """A budget alert that fired (each fires at most once per period)."""

    scope: str  # team | key
    name: str
    period: str  # 'month:2026-11-01'
    mark: str  # '80' or 'refused'
    fired_at: float
    spent_nusd: int
    budget_nusd: int
