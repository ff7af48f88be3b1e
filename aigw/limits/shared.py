"""Limits shared by several gateway processes through Redis: :class:`RedisLimiter`.

It implements :class:`aigw.limits.base.Limiter` with the same limits, refusals and
headers as the in-process engine (:mod:`aigw.limits.engine`), but the counters live
in Redis, so N processes enforce one limit together instead of N times it:

* admission is ONE round trip: one Lua script (:mod:`aigw.limits.lua`, EVALSHA,
  loaded once, reloaded on NOSCRIPT) checks and takes the key's and team's
  requests and tokens per minute (GCRA), requests in flight and the budget
  reservation against the period's spend;
* settling or releasing is one round trip too;
* in-flight slots and reservations are leases with an expiry, renewed while the call
  runs, so a process that dies (kill -9) does not hold them forever;
* the spend per key and team per local day lives in Redis, seeded from the ledger
  by the first process to start (a marker key makes the seed happen once);
* a budget alert's webhook is posted by one process only (``SET NX`` per alert).

* provider quotas (``[quotas.*]``) are taken by one script per upstream call
  (:mod:`aigw.limits.shared_quotas`), so N processes respect the provider's rpm
  and tpm together; an upstream 429 pauses the model in every process.

Redis unreachable: ``on_unavailable = "refuse"`` answers 503 in the client's own
error envelope; ``"local"`` admits through the in-process engine (per-process limits,
spend reloaded from the ledger) and logs it once, then returns to Redis when a probe
finds it back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from itertools import count
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from aigw import secrets
from aigw.config import Config, CountersConfig
from aigw.errors import GatewayError
from aigw.limits import lua, refusals
from aigw.limits.alerts import REFUSED, Alert
from aigw.limits.base import Demand, Lease
from aigw.limits.budgets import output_bound, worst_case
from aigw.limits.engine import LocalLease, LocalLimiter, Scope
from aigw.limits.gcra import Bucket
from aigw.limits.shared_quotas import QuotaCharge, SharedQuotas
from aigw.limits.wire import RedisWire, supports
from aigw.model import NO_LIMITS, KeyRecord, Limits, TeamRecord
from aigw.store.base import LimitState
from aigw.usage import Usage

log = logging.getLogger("aigw.limits")

# A lease's slot and reservation outlive a crashed process by at most this long;
# running calls renew theirs every third of it.
LEASE_SECONDS = 60.0
# Spend of a day is kept this long in Redis (longer than any budget period).
SPEND_SECONDS = 40 * 86400
PROBE_SECONDS = 1.0
# A stopped Redis refuses connections at once; these bound a hung or overloaded one.
CONNECT_TIMEOUT = 2.0
TIMEOUT = 5.0
# Connections per process (one per Redis call in flight; redis-py's default is 100,
# which a burst of 100 calls plus the breakers' pub/sub connection overflows).
MAX_CONNECTIONS = 1024

UNAVAILABLE = (RedisError, OSError, asyncio.TimeoutError)


def connect(cfg: CountersConfig) -> aioredis.Redis:
    """A client for ``cfg.url``, its password from the environment or the keyring."""
    found = secrets.counters_password()
    return aioredis.Redis.from_url(
        cfg.url,
        # A pool that runs out raises (the blocking pool's per-command timer costs
        # ~0.1 ms at c=1): sized so no realistic burst of one process reaches it.
        max_connections=MAX_CONNECTIONS,
        password=found[0] if found else None,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        # Fail fast: on_unavailable decides, not a retry loop per request.
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def where(url: str) -> str:
    """host:port of a counters URL, for messages (never the user or password)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


def unavailable(url: str, exc: BaseException) -> GatewayError:
    return GatewayError(
        503,
        f"The gateway's shared rate-limit counters (Redis at {where(url)}) are "
        f"unreachable ({type(exc).__name__}), so this request's limits and budget "
        "cannot be checked. Please try again shortly.",
        type="server_error",
        code="counters_unavailable",
        headers=refusals.retry_after(1.0),
    )


@dataclass(slots=True)
class _Scope:
    """One key or team of a call, as the scripts see it."""

    kind: str
    name: str
    limits: Limits
    keys: list[str]
    rpm: Bucket | None = None
    tpm: Bucket | None = None
    charged: float = 0.0  # tokens taken from the tpm limit
    budget_period: tuple[int, int] = (0, 0)
    tracked: bool = False  # holds an in-flight lease


@dataclass(slots=True)
class _Held:
    """What a Redis lease holds, for settling and for renewing its expiry."""

    scopes: list[_Scope] = field(default_factory=list)


class RedisLease:
    """What :class:`RedisLimiter` took for one call (a :class:`aigw.limits.base.Lease`)."""

    __slots__ = ("_headers", "done", "held", "id", "inner", "limiter", "upstream")

    def __init__(self, limiter: RedisLimiter, lease_id: str, inner: LocalLease) -> None:
        self.limiter = limiter
        self.id = lease_id
        self.inner = inner  # provider quotas (per process) and the call's identity
        self.held = _Held()
        self._headers: dict[str, str] = {}
        self.done = False
        self.upstream: list[list[QuotaCharge]] = []  # shared quota charges, per attempt

    def headers(self) -> dict[str, str]:
        return self._headers

    def upstream_slot(self, provider: str, model: str) -> AbstractAsyncContextManager[None]:
        limiter = self.limiter
        if provider not in limiter.quotas.providers:
            return self.inner.upstream_slot(provider, model)
        return limiter.slot(self, provider, model)

    async def settle(self, usage: Usage | None, cost_nusd: int | None) -> None:
        if self.done:
            return
        self.done = True
        await self.limiter.settle(self, usage, cost_nusd)

    async def release(self) -> None:
        if self.done:
            return
        self.done = True
        await self.limiter.settle(self, None, None, release=True)


class RedisLimiter:
    """Limits, concurrency and budgets counted in Redis for every gateway process."""

    def __init__(
        self, state: LimitState, config: Config, client: aioredis.Redis | None = None
    ) -> None:
        self.config = config
        self.cfg = config.counters
        self.local = LocalLimiter(state, config)
        self.redis = client if client is not None else connect(self.cfg)
        p = self.cfg.prefix
        self.prefix = p
        self.marker = f"{p}seeded"
        # The scripts every limited call runs (and the provider quotas' below) go over
        # aigw's own connection (:mod:`aigw.limits.wire`: far less CPU per call than
        # redis-py's client); rediss:// stays on redis-py.
        self.wire: RedisWire | None = None
        make: Callable[[str], Callable[..., Awaitable[Any]]] = self.redis.register_script
        if client is None and supports(self.cfg.url):
            kwargs = self.redis.connection_pool.connection_kwargs
            self.wire = RedisWire(
                self.cfg.url,
                kwargs.get("password"),
                connect_timeout=CONNECT_TIMEOUT,
                timeout=TIMEOUT,
            )
            make = self.wire.script
        self._admit = make(lua.ADMIT)
        self._settle = make(lua.SETTLE)
        self._seed = self.redis.register_script(lua.SEED)
        self._renew = self.redis.register_script(lua.RENEW)
        self._ids = count()
        self._id_base = f"{os.getpid()}.{os.urandom(4).hex()}."
        self.live: dict[str, RedisLease] = {}  # leases holding in-flight slots
        self.lease_seconds = LEASE_SECONDS
        self.available = True  # False: Redis failed and no probe has found it back
        self.fallback = False  # admitting through the local engine (on_unavailable=local)
        self.last_error = ""
        self._recovered = asyncio.Event()
        self.local.alerts.claim = self._claim_alert
        self.quotas = SharedQuotas(self.redis, p, config, make)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], float]:
        return self.local.clock

    async def start(self) -> None:
        """The local engine's state, then the spend seed (once per Redis, not per process)."""
        await self.local.start()
        try:
            await self.seed()
        except UNAVAILABLE as exc:
            await self._lost(exc)

    async def seed(self) -> bool:
        """Write this period's spend from the ledger unless some process already did."""
        if await self.redis.exists(self.marker):
            return False
        cal = self.local.calendar
        now = time.time()
        day = cal.horizon(now)
        today = cal.local_date(now).toordinal()
        index: dict[str, int] = {}
        rows: list[list[int]] = []
        while day.toordinal() <= today:
            ordinal = day.toordinal()
            start, end = cal.midnight(day), cal.midnight(day.fromordinal(ordinal + 1))
            for row in await self.local.state.spend_between(start, end):
                for scope, name in (("team", row.team), ("key", row.key_id)):
                    if name is None or not row.cost_nusd:
                        continue
                    k = self._key(scope, name, "spend")
                    i = index.setdefault(k, len(index) + 2)  # KEYS[1] is the marker
                    rows.append([i, ordinal, row.cost_nusd])
            day = day.fromordinal(ordinal + 1)
        keys = [self.marker, *index]
        done = await self._seed(keys=keys, args=[orjson.dumps(rows).decode(), SPEND_SECONDS])
        if done:
            log.info("counters: seeded this period's spend into Redis from the ledger")
        return bool(done)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.local.run())
            tg.create_task(self._renew_forever())
            tg.create_task(self._probe_forever())

    async def close(self) -> None:
        await self.local.close()
        if self.wire is not None:
            await self.wire.aclose()
        with suppress(*UNAVAILABLE):
            await self.redis.aclose()

    def counters_state(self) -> str:
        """For /readyz: 'ok', or why not."""
        if self.available:
            return "ok"
        mode = "local limits" if self.fallback else "refusing"
        return f"unavailable ({self.last_error}); {mode}"

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if not self.available or not self.live:
                continue
            keys: dict[str, int] = {}
            args: list[Any] = [self.lease_seconds]
            for lease in list(self.live.values()):
                for s in lease.held.scopes:
                    if s.tracked:
                        i = keys.setdefault(s.keys[2], len(keys) + 1)
                        args += [i, lease.id]
            try:
                await self._renew(keys=list(keys), args=args)
            except UNAVAILABLE as exc:
                await self._lost(exc)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            if self.available:
                continue
            try:
                await self.redis.ping()
                await self.seed()  # a restarted Redis lost the spend: the ledger has it
            except UNAVAILABLE as exc:
                self.last_error = type(exc).__name__
                continue
            self.available = True
            self.fallback = False
            log.warning(
                "counters: Redis at %s is back; limits are shared again", where(self.cfg.url)
            )

    async def _lost(self, exc: BaseException) -> None:
        """Redis failed: say so once; with on_unavailable = "local", switch to local."""
        self.last_error = type(exc).__name__
        if not self.available:
            return
        self.available = False
        if self.cfg.on_unavailable == "local":
            self.fallback = True  # before any await: concurrent calls fall back too
            log.error(
                "counters: Redis at %s is unreachable (%s); limits are per process until "
                "it is back",
                where(self.cfg.url),
                self.last_error,
            )
            # The local engine's spend is this process's view at start: reload it from
            # the ledger (into a fresh table, swapped in whole).
            fresh = LocalLimiter(self.local.state, self.config)
            try:
                await fresh._load_spend(self.clock())
            except Exception:
                log.exception("counters: could not reload the spend from the ledger")
            else:
                self.local.spend = fresh.spend
        else:
            log.error(
                "counters: Redis at %s is unreachable (%s); refusing limited requests (503) "
                "until it is back",
                where(self.cfg.url),
                self.last_error,
            )

    async def _claim_alert(self, alert: Alert) -> bool:
        """True if this process is the one to post ``alert`` (the first to claim it)."""
        k = f"{self.prefix}alert:{alert.scope}:{alert.name}:{alert.period.id}:{alert.mark}"
        try:
            return bool(await self.redis.set(k, "1", nx=True, ex=SPEND_SECONDS))
        except UNAVAILABLE:
            return True  # better twice than never

    async def refresh_spend(self, kind: str, names: list[str]) -> None:
        """Replace this process's view of the spend of ``names`` by the shared one (all
        processes'), in one round trip; on a Redis failure the local view stays."""
        if not names or not self.available:
            return
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._key(kind, name, "spend"))
        try:
            found = await pipe.execute()
        except UNAVAILABLE as exc:
            log.debug("counters: shared spend not read (%s); the local view stays", exc)
            return
        for name, days in zip(names, found, strict=True):
            if days:  # none: nothing spent in 40 days, or Redis lost it (the seed restores)
                self.local.spend_of(kind, name).replace({int(d): int(v) for d, v in days.items()})

    # -- admission -------------------------------------------------------------------

    def _key(self, kind: str, name: str, what: str) -> str:
        return f"{self.prefix}{what}:{kind}:{name}"

    def _scope(self, kind: str, name: str, limits: Limits) -> _Scope:
        keys = [self._key(kind, name, w) for w in ("rpm", "tpm", "inflight", "held", "spend")]
        s = _Scope(kind, name, limits, keys)
        burst = self.config.limits.burst
        if limits.rpm is not None:
            s.rpm = Bucket(keys[0], limits.rpm, burst)
        if limits.tpm is not None:
            s.tpm = Bucket(keys[1], limits.tpm, burst)
        return s

    async def admit(self, key: KeyRecord, team: TeamRecord | None, demand: Demand) -> Lease:
        """Take capacity for one call (one Redis round trip) or raise GatewayError."""
        if self.fallback:
            return await self.local.admit(key, team, demand)
        local = self.local
        team_limits = team.limits if team is not None else NO_LIMITS
        priority = key.limits.priority or team_limits.priority or "normal"
        tokens = demand.prompt_tokens + local._output_estimate(demand.max_output, demand.price)
        inner = LocalLease(local, key, team, priority, tokens, demand.ts)
        lease = RedisLease(self, f"{self._id_base}{next(self._ids)}", inner)
        if key.limits.empty and team_limits.empty:
            return lease  # nothing to check; settling still records the spend
        scopes: list[_Scope] = []
        if not key.limits.empty:
            scopes.append(self._scope("key", key.id, key.limits))
        if not team_limits.empty:
            scopes.append(self._scope("team", key.team, team_limits))
        worst = self._worst(demand, scopes)
        now = self.clock()
        args: list[Any] = [lease.id, tokens, self.lease_seconds, len(scopes)]
        keys = [self.marker]
        for s in scopes:
            lim = s.limits
            budget, first, last = -1, 0, 0
            if lim.budget_nusd is not None and worst is not None:
                period = local._period(lim, now)
                budget, first, last = lim.budget_nusd, period.first_ord, period.end_ord
                s.budget_period = (first, last)
            s.tracked = lim.max_parallel is not None or budget >= 0
            args += [
                lim.rpm or 0,
                s.rpm.capacity if s.rpm else 0,
                lim.tpm or 0,
                s.tpm.capacity if s.tpm else 0,
                lim.max_parallel if lim.max_parallel is not None else -1,
                budget,
                worst or 0,
                first,
                last,
            ]
            keys += s.keys
        try:
            reply = await self._admit(keys=keys, args=args)
            if reply[0] == "unseeded":  # Redis restarted empty: seed, then ask again
                await self.seed()
                reply = await self._admit(keys=keys, args=args)
        except UNAVAILABLE as exc:
            await self._lost(exc)
            if self.fallback:
                return await local.admit(key, team, demand)
            raise unavailable(self.cfg.url, exc) from None
        verdict = reply[0]
        if verdict == "ok":
            self._debts(scopes, reply[2:])
            for s in scopes:
                if s.tpm is not None:
                    s.charged = min(float(tokens), float(s.tpm.capacity))
            lease.held.scopes = scopes
            if any(s.tracked for s in scopes):
                self.live[lease.id] = lease
            lease._headers = LocalLimiter._headers(self._as_scopes(scopes), 0.0)
            return lease
        raise self._refusal(verdict, reply, scopes, key, demand, tokens, worst or 0)

    def _worst(self, demand: Demand, scopes: list[_Scope]) -> int | None:
        """The call's worst-case cost when a budget applies (None: none applies)."""
        budgeted = [s for s in scopes if s.limits.budget_nusd is not None]
        if not budgeted:
            return None
        cfg = self.config.budgets
        price = demand.price
        if price is None:
            if cfg.unpriced == "allow":
                return None
            last = budgeted[-1]
            raise refusals.unpriced(
                demand.model, demand.provider, demand.upstream_model, f"{last.kind} {last.name}"
            )
        output = output_bound(
            price,
            demand.max_output,
            demand.provider_type,
            cfg,
            self.config.translation.default_max_tokens,
        )
        return worst_case(price, demand.prompt_bound, output)

    @staticmethod
    def _debts(scopes: list[_Scope], debts: list[str]) -> None:
        """Set each bucket to the debt the script returned (at the script's now)."""
        for i, s in enumerate(scopes):
            for b, d in ((s.rpm, debts[2 * i]), (s.tpm, debts[2 * i + 1])):
                if b is not None:
                    b.at, b.debt = 0.0, float(d)

    @staticmethod
    def _as_scopes(scopes: list[_Scope]) -> list[Scope]:
        out = []
        for s in scopes:
            sc = Scope(s.kind, s.name)
            sc.rpm, sc.tpm = s.rpm, s.tpm
            out.append(sc)
        return out

    def _refusal(
        self,
        verdict: str,
        reply: list[Any],
        scopes: list[_Scope],
        key: KeyRecord,
        demand: Demand,
        tokens: int,
        worst: int,
    ) -> GatewayError:
        if verdict == "parallel":
            s = scopes[int(reply[1]) - 1]
            assert s.limits.max_parallel is not None
            return refusals.too_many_parallel(
                refusals.subject(s.kind, s.name, key.team), s.limits.max_parallel
            )
        if verdict == "budget":
            s = scopes[int(reply[1]) - 1]
            spent, reserved = int(reply[2]), int(reply[3])
            budget = s.limits.budget_nusd
            assert budget is not None
            local = self.local
            now = self.clock()
            period = local._period(s.limits, now)
            thresholds = (
                s.limits.alert_at if s.limits.alert_at is not None else local._default_alerts
            )
            if spent + worst > budget and thresholds:
                local.alerts.fire(s.kind, s.name, key.team, period, REFUSED, spent, budget, now)
            return refusals.over_budget(
                refusals.subject(s.kind, s.name, key.team),
                budget,
                period.kind,
                spent,
                reserved,
                worst,
                local.calendar.reset_text(period),
                period.end_ts - now,
                demand.max_output is not None,
            )
        # 'rate': the culprit and what, then every bucket's debt before any take.
        s = scopes[int(reply[1]) - 1]
        what = str(reply[2])
        now = 0.0  # buckets hold the debt relative to the script's now
        self._debts(scopes, reply[4:])
        bucket = s.rpm if what == "requests" else s.tpm
        assert bucket is not None
        asked = 1 if what == "requests" else min(tokens, bucket.capacity)
        wait = 0.0
        for sc in scopes:
            for b, cost in ((sc.rpm, 1), (sc.tpm, tokens)):
                if b is not None:
                    wait = max(wait, b.wait(now, cost))
        used = bucket.used(now)
        used_n = round(used) if abs(used - round(used)) < 0.01 else math.ceil(used)
        return refusals.rate_limited(
            refusals.subject(s.kind, s.name, key.team),
            what,
            bucket.limit,
            used_n,
            asked,
            wait,
            LocalLimiter._headers(self._as_scopes(scopes), now),
        )

    # -- settling --------------------------------------------------------------------

    async def settle(
        self, lease: RedisLease, usage: Usage | None, cost: int | None, *, release: bool = False
    ) -> None:
        """Give back the slots and reservations, charge the real tokens and cost: one
        round trip. Never raises (the answer must still reach the client)."""
        self.live.pop(lease.id, None)
        inner = lease.inner
        local = self.local
        try:
            if release:
                await inner.release()
            else:
                # Provider quota charges are per process; the spend is counted below.
                local.settle(inner, usage, None)
                inner.done = True
        except Exception:
            log.exception("settling the provider quotas of a call failed")
        key, team = inner.key, inner.team
        if key is None:
            return
        actual = usage.total_tokens if usage is not None else 0
        by_kind = {s.kind: s for s in lease.held.scopes}
        now = self.clock()
        day = local.calendar.day(inner.ts)
        scopes: list[_Scope] = []
        args: list[Any] = [lease.id, SPEND_SECONDS, 0]
        keys = [self.marker]
        checks: list[tuple[_Scope, int]] = []
        quota_keys: list[str] = []
        quota_args: list[Any] = []
        for kind, name, limits in (
            ("key", key.id, key.limits),
            ("team", key.team, team.limits if team is not None else NO_LIMITS),
        ):
            s = by_kind.get(kind) or self._scope(kind, name, limits)
            charge = 0 if release or cost is None else cost
            delta = 0.0 if release or s.tpm is None else actual - s.charged
            if not s.tracked and not charge and not delta:
                continue
            first = last = 0
            budget = limits.budget_nusd
            if charge and budget is not None:
                period = local._period(limits, now)
                if period.first_ord <= day < period.end_ord:
                    first, last = period.first_ord, period.end_ord
                    checks.append((s, budget))
            args += [s.tpm.interval if s.tpm and delta else 0, delta, charge, day, first, last]
            keys += s.keys
            scopes.append(s)
        # Provider quota estimates become the real count (released: they stay taken,
        # as in process); only the last attempt produced the usage.
        attempts = [] if release else lease.upstream
        for i, charges in enumerate(attempts):
            for c in charges:
                real = actual if i == len(attempts) - 1 else 0
                if real != c.tokens:
                    quota_keys.append(c.key)
                    quota_args += [c.interval, real - c.tokens]
        if not scopes and not quota_keys:
            return
        args[2] = len(scopes)
        keys += quota_keys
        args += quota_args
        if self.fallback:
            return  # the leases expire in Redis; the ledger has the cost for the next seed
        try:
            totals = await self._settle(keys=keys, args=args)
        except UNAVAILABLE as exc:
            await self._lost(exc)
            return
        except Exception:
            log.exception("settling the limits of a call in Redis failed")
            return
        for (s, budget), total in zip(checks, totals, strict=False):
            thresholds = (
                s.limits.alert_at if s.limits.alert_at is not None else local._default_alerts
            )
            if thresholds:
                period = local._period(s.limits, now)
                local.alerts.check(
                    s.kind, s.name, key.team, period, int(total), budget, thresholds, now
                )

    # -- provider quotas -----------------------------------------------------------

    @asynccontextmanager
    async def slot(self, lease: RedisLease, provider: str, model: str) -> AsyncIterator[None]:
        """Wait (by the call's priority, in this process) for room under the provider's
        quotas, taken in Redis for every process: one round trip when there is room."""
        if not self.fallback:
            inner = lease.inner
            try:
                charges = await self.quotas.acquire(provider, model, inner.priority, inner.tokens)
            except UNAVAILABLE as exc:
                await self._lost(exc)
                if not self.fallback:
                    raise unavailable(self.cfg.url, exc) from None
            else:
                lease.upstream.append(charges)
                yield
                return
        async with lease.inner.upstream_slot(provider, model):
            yield

    async def upstream_feedback(
        self, provider: str, model: str, status: int, retry_after: str | None
    ) -> None:
        if status == 429 and provider in self.quotas.providers and not self.fallback:
            try:
                await self.quotas.pause(provider, model, retry_after)
            except UNAVAILABLE as exc:
                await self._lost(exc)
            else:
                return
        await self.local.upstream_feedback(provider, model, status, retry_after)
