"""The in-process limits engine: rate limits, concurrency, hard budgets and provider
quotas, all decided in memory. :class:`LocalLimiter` implements
:class:`aigw.limits.base.Limiter`.

Exactness comes from the event loop: :meth:`LocalLimiter.admit` checks and takes in
one synchronous stretch (no await between them), so concurrent requests cannot both
take the last unit: with ``--rpm 60``, 200 simultaneous calls admit exactly 60.

For each call the engine looks at the key's own limits and at its team's:

* requests and tokens per minute (GCRA buckets, :mod:`aigw.limits.gcra`). Tokens
  are counted up front as the prompt estimate plus ``max_tokens`` (or, without it,
  ``[limits] default_output_tokens`` capped by the model's maximum output) and
  settled to the real usage when the call ends;
* requests in flight (``max_parallel``);
* the hard budget of the current calendar period: the call's worst-case cost is
  reserved and replaced by the real cost when it ends (:mod:`aigw.limits.budgets`).

It returns a :class:`LocalLease`: what was taken, to be settled (or released) exactly
once, and the ``x-ratelimit-*`` headers for the response. The provider's quota is
taken later, in :meth:`LocalLease.upstream_slot`, right before the call is sent.

Nothing here touches SQLite per request. Counters, spend and fired alerts are loaded
by :meth:`LocalLimiter.start`, written back in batches by :meth:`LocalLimiter.run`
and by :meth:`LocalLimiter.close`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from aigw.config import Config
from aigw.limits import refusals
from aigw.limits.alerts import REFUSED, Alerts
from aigw.limits.base import Demand
from aigw.limits.budgets import Spend, output_bound, worst_case
from aigw.limits.gcra import Bucket, Counters, go_duration
from aigw.limits.periods import Calendar, Period
from aigw.limits.quotas import Charge, Quotas
from aigw.model import NO_LIMITS, KeyRecord, Limits, TeamRecord
from aigw.pricing import Price
from aigw.store.base import LimitState
from aigw.usage import Usage

log = logging.getLogger("aigw.limits")

WEBHOOK_DRAIN_SECONDS = 2.0


class Scope:
    """Rate-limit state of one key or one team."""

    __slots__ = ("inflight", "kind", "limits", "name", "rpm", "tpm")

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind  # key | team
        self.name = name
        self.limits = NO_LIMITS
        self.rpm: Bucket | None = None
        self.tpm: Bucket | None = None
        self.inflight = 0

    def sync(self, limits: Limits, counters: Counters, now: float) -> None:
        """Follow a changed limit (a CLI edit reloaded into the key or team record)."""
        if limits is self.limits:
            return  # the same record as last time: the common case
        if limits == self.limits:
            self.limits = limits
            return
        self.limits = limits
        prefix = f"{self.kind}:{self.name}"
        if limits.rpm is None:
            if self.rpm is not None:
                counters.drop(self.rpm.id)
            self.rpm = None
        else:
            self.rpm = counters.bucket(f"{prefix}:rpm", limits.rpm, now)
        if limits.tpm is None:
            if self.tpm is not None:
                counters.drop(self.tpm.id)
            self.tpm = None
        else:
            self.tpm = counters.bucket(f"{prefix}:tpm", limits.tpm, now)

    def who(self, team: str) -> str:
        return refusals.subject(self.kind, self.name, team)


_NO_SLOT = nullcontext()


class LocalLease:
    """What :class:`LocalLimiter` took for one call (a :class:`aigw.limits.base.Lease`).

    ``LocalLease()`` with no limiter is a no-op lease (nothing to give back).
    """

    __slots__ = (
        "_headers",
        "_limiter",
        "charges",
        "done",
        "key",
        "parallel",
        "priority",
        "reserved",
        "team",
        "tokens",
        "ts",
        "upstream",
    )

    def __init__(
        self,
        limiter: LocalLimiter | None = None,
        key: KeyRecord | None = None,
        team: TeamRecord | None = None,
        priority: str = "normal",
        tokens: int = 0,
        ts: float = 0.0,
    ) -> None:
        self._limiter = limiter
        self.key = key
        self.team = team
        self.priority = priority
        self.tokens = tokens  # estimated tokens taken from tokens-per-minute limits
        self.ts = ts  # when the call started: its spend counts to that day
        self.charges: list[tuple[Bucket, float]] = []  # tpm buckets and what they got
        self.parallel: list[Scope] = []  # scopes whose in-flight count this holds
        self.reserved: list[tuple[Spend, int]] = []  # budget reservations
        self.upstream: list[list[Charge]] = []  # provider quota charges, per attempt
        self._headers: dict[str, str] = {}
        self.done = limiter is None  # settled or released

    def headers(self) -> dict[str, str]:
        """Rate-limit headers for the response (x-ratelimit-*, as OpenAI sends them)."""
        return self._headers

    def upstream_slot(self, provider: str, model: str) -> AbstractAsyncContextManager[None]:
        """Wait (by priority) for the provider's quota before calling it."""
        limiter = self._limiter
        if limiter is None or not limiter.quotas.gates:
            return _NO_SLOT  # the common case: no generator-based context per request
        return limiter.slot(self, provider, model)

    async def settle(self, usage: Usage | None, cost_nusd: int | None) -> None:
        """Replace the reservations by the real usage and cost. Idempotent; never
        raises (a failure is logged: the answer must still reach the client)."""
        if self.done:
            return
        self.done = True
        assert self._limiter is not None
        try:
            self._limiter.settle(self, usage, cost_nusd)
        except Exception:
            log.exception("settling the limits of a call failed; released its reservations")
            self.give_back()

    async def release(self) -> None:
        """Give back what was taken, charging nothing (a call that ends unsettled)."""
        if not self.done:
            self.done = True
            self.give_back()

    def give_back(self) -> None:
        """Return the in-flight slots and budget reservations."""
        for scope in self.parallel:
            scope.inflight -= 1
        self.parallel = []
        for spend, amount in self.reserved:
            spend.reserved -= amount
        self.reserved = []


class LocalLimiter:
    """The limits engine of one gateway process."""

    def __init__(self, state: LimitState, config: Config) -> None:
        self.state = state
        self.config = config
        self.clock: Callable[[], float] = time.time
        self.calendar = Calendar(config.budgets.timezone)
        self.counters = Counters(config.limits.burst)
        self.keys: dict[str, Scope] = {}
        self.team_scopes: dict[str, Scope] = {}
        self.spend: dict[tuple[str, str], Spend] = {}
        webhook = os.environ.get("AIGW_ALERTS_WEBHOOK_URL") or config.alerts.webhook_url
        self.alerts = Alerts(config.alerts, self.calendar, webhook)
        self.quotas = Quotas(config, self.counters, self._now)
        self._default_period = config.budgets.period
        self._default_alerts = tuple(config.budgets.alert_at)
        self._horizon = 0
        self._run_task: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return self.clock()  # late-bound, so tests can freeze time

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Load persisted counters, this period's spend and fired alerts."""
        now = self.clock()
        self.counters.restored = await self.state.load_counters(now)
        # Rebuilt so the quota buckets (made from the config) pick up their saved state.
        self.quotas = Quotas(self.config, self.counters, self._now)
        await self._load_spend(now)
        periods = [self.calendar.period(kind, now).id for kind in ("day", "week", "month")]
        self.alerts.load(await self.state.load_alerts(periods))

    async def _load_spend(self, now: float) -> None:
        cal = self.calendar
        day = cal.horizon(now)
        self._horizon = day.toordinal()
        today = cal.local_date(now).toordinal()
        while day.toordinal() <= today:
            start, end = cal.midnight(day), cal.midnight(day.fromordinal(day.toordinal() + 1))
            ordinal = day.toordinal()
            for row in await self.state.spend_between(start, end):
                for scope, name in (("team", row.team), ("key", row.key_id)):
                    if name is None:
                        continue
                    self.spend_of(scope, name).add(ordinal, row.cost_nusd)
            day = day.fromordinal(ordinal + 1)

    async def run(self) -> None:
        """Background work until cancelled: batched writes and webhooks."""
        self._run_task = asyncio.current_task()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._persist_forever())
            tg.create_task(self.alerts.deliver_forever())

    async def close(self) -> None:
        """Write what is pending and give queued webhooks a last chance."""
        task = self._run_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # never write concurrently with it
        try:
            await self.persist()
        except Exception:
            log.exception("could not write the rate-limit counters at shutdown")
        await self.alerts.drain(WEBHOOK_DRAIN_SECONDS)

    async def _persist_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.limits.persist_interval)
            try:
                await self.persist()
            except Exception:  # a busy database must not stop the limits engine
                log.exception("could not write the rate-limit counters; will retry")

    async def persist(self) -> None:
        """Write changed counters and fired alerts (one batch); prune past periods."""
        now = self.clock()
        busy, idle = self.counters.snapshot(now)
        alerts, self.alerts.unsaved = self.alerts.unsaved, []
        try:
            await self.state.save_counters(busy, idle)
            await self.state.save_alerts(alerts)
        except BaseException:
            # Keep them for the next batch.
            for bucket_id, _, _ in busy:
                b = self.counters.buckets.get(bucket_id)
                if b is not None:
                    self.counters.dirty.add(b)
            self.counters.dropped.update(idle)
            self.alerts.unsaved[:0] = alerts
            raise
        horizon = self.calendar.horizon(now).toordinal()
        if horizon != self._horizon:
            self._horizon = horizon
            for spend in self.spend.values():
                spend.prune(horizon)
            self.alerts.prune({self.calendar.period(k, now).id for k in ("day", "week", "month")})

    # -- admission -------------------------------------------------------------------

    def spend_of(self, scope: str, name: str) -> Spend:
        """The spend of team or key ``name`` (``scope``), made on first use."""
        spend = self.spend.get((scope, name))
        if spend is None:
            spend = self.spend[(scope, name)] = Spend()
        return spend

    def _scope(self, table: dict[str, Scope], kind: str, name: str) -> Scope:
        scope = table.get(name)
        if scope is None:
            scope = table[name] = Scope(kind, name)
        return scope

    def _period(self, limits: Limits, now: float) -> Period:
        return self.calendar.period(limits.period or self._default_period, now)

    async def admit(self, key: KeyRecord, team: TeamRecord | None, demand: Demand) -> LocalLease:
        """Take capacity for one call or raise GatewayError (429, 403).

        No await from the first check to the last take: that is what makes the
        limits exact under concurrency in one process.
        """
        team_limits = team.limits if team is not None else NO_LIMITS
        priority = key.limits.priority or team_limits.priority or "normal"
        price = demand.price
        tokens = demand.prompt_tokens + self._output_estimate(demand.max_output, price)
        if key.limits.empty and team_limits.empty:
            # Nothing to check; settling still records the spend and provider tokens.
            return LocalLease(self, key, team, priority, tokens, demand.ts)
        now = self.clock()
        scopes: list[Scope] = []
        if not key.limits.empty:
            k = self._scope(self.keys, "key", key.id)
            k.sync(key.limits, self.counters, now)
            scopes.append(k)
        if not team_limits.empty:
            t = self._scope(self.team_scopes, "team", key.team)
            t.sync(team_limits, self.counters, now)
            scopes.append(t)

        # Check everything first, take nothing until all checks passed.
        budgets = self._check_budgets(demand, key, team_limits, now)
        for s in scopes:
            limit = s.limits.max_parallel
            if limit is not None and s.inflight >= limit:
                raise refusals.too_many_parallel(s.who(key.team), limit)
        self._check_rates(scopes, tokens, key.team, now)

        # Every check passed: take.
        lease = LocalLease(self, key, team, priority, tokens, demand.ts)
        for s in scopes:
            if s.limits.max_parallel is not None:
                s.inflight += 1
                lease.parallel.append(s)
        dirty = self.counters.dirty
        for s in scopes:
            if s.rpm is not None:
                s.rpm.take(now, 1)
                dirty.add(s.rpm)
            if s.tpm is not None:
                lease.charges.append((s.tpm, s.tpm.take(now, tokens)))
                dirty.add(s.tpm)
        for spend, amount in budgets:
            spend.reserved += amount
            lease.reserved.append((spend, amount))
        lease._headers = self._headers(scopes, now)
        return lease

    def _output_estimate(self, max_output: int | None, price: Price | None) -> int:
        """Output tokens counted up front against tokens-per-minute limits and quotas."""
        if max_output is not None:
            return max_output
        default = self.config.limits.default_output_tokens
        if price is not None and price.max_output_tokens is not None:
            return min(default, price.max_output_tokens)
        return default

    def _check_budgets(
        self, demand: Demand, key: KeyRecord, team_limits: Limits, now: float
    ) -> list[tuple[Spend, int]]:
        """The reservations to make, or GatewayError when a budget would be passed."""
        checks: list[tuple[str, str, Limits]] = []
        if key.limits.budget_nusd is not None:
            checks.append(("key", key.id, key.limits))
        if team_limits.budget_nusd is not None:
            checks.append(("team", key.team, team_limits))
        if not checks:
            return []
        cfg = self.config.budgets
        price = demand.price
        if price is None:
            if cfg.unpriced == "allow":
                return []
            raise refusals.unpriced(
                demand.model,
                demand.provider,
                demand.upstream_model,
                f"{checks[-1][0]} {checks[-1][1]}",
            )
        output = output_bound(
            price,
            demand.max_output,
            demand.provider_type,
            cfg,
            self.config.translation.default_max_tokens,
        )
        worst = worst_case(price, demand.prompt_bound, output)
        out: list[tuple[Spend, int]] = []
        for scope, name, limits in checks:
            budget = limits.budget_nusd
            assert budget is not None
            spend = self.spend_of(scope, name)
            period = self._period(limits, now)
            spent = spend.total(period)
            if spent + spend.reserved + worst > budget:
                thresholds = (
                    limits.alert_at if limits.alert_at is not None else self._default_alerts
                )
                if spent + worst > budget and thresholds:
                    # Out of budget, not just held up by calls in flight: say so, once
                    # a period.
                    self.alerts.fire(
                        scope, name, key.team, period, REFUSED, spent, budget, self.clock()
                    )
                raise refusals.over_budget(
                    refusals.subject(scope, name, key.team),
                    budget,
                    period.kind,
                    spent,
                    spend.reserved,
                    worst,
                    self.calendar.reset_text(period),
                    period.end_ts - self.clock(),
                    demand.max_output is not None,
                )
            out.append((spend, worst))
        return out

    def _check_rates(self, scopes: list[Scope], tokens: int, team: str, now: float) -> None:
        longest, culprit, what = 0.0, None, ""
        for s in scopes:
            if s.rpm is not None:
                w = s.rpm.wait(now, 1)
                if w > longest:
                    longest, culprit, what = w, s, "requests"
            if s.tpm is not None:
                w = s.tpm.wait(now, tokens)
                if w > longest:
                    longest, culprit, what = w, s, "tokens"
        if culprit is None:
            return
        bucket = culprit.rpm if what == "requests" else culprit.tpm
        assert bucket is not None
        asked = 1 if what == "requests" else min(tokens, bucket.capacity)
        used = bucket.used(now)
        used = round(used) if abs(used - round(used)) < 0.01 else math.ceil(used)
        raise refusals.rate_limited(
            culprit.who(team),
            what,
            bucket.limit,
            used,
            asked,
            longest,
            self._headers(scopes, now),
        )

    @staticmethod
    def _headers(scopes: list[Scope], now: float) -> dict[str, str]:
        """x-ratelimit-* for the tightest request and token limits of the call."""
        headers: dict[str, str] = {}
        req: Bucket | None = None
        tok: Bucket | None = None
        req_left = tok_left = 0
        for s in scopes:  # plain loops: this runs on every limited request
            b = s.rpm
            if b is not None:
                left = b.remaining(now)
                if req is None or left < req_left:
                    req, req_left = b, left
            b = s.tpm
            if b is not None:
                left = b.remaining(now)
                if tok is None or left < tok_left:
                    tok, tok_left = b, left
        if req is not None:
            headers["x-ratelimit-limit-requests"] = req.limit_text
            headers["x-ratelimit-remaining-requests"] = str(req_left)
            headers["x-ratelimit-reset-requests"] = go_duration(req.reset(now))
        if tok is not None:
            headers["x-ratelimit-limit-tokens"] = tok.limit_text
            headers["x-ratelimit-remaining-tokens"] = str(tok_left)
            headers["x-ratelimit-reset-tokens"] = go_duration(tok.reset(now))
        return headers

    # -- settling --------------------------------------------------------------------

    def settle(self, lease: LocalLease, usage: Usage | None, cost: int | None) -> None:
        """Called by :meth:`LocalLease.settle`: real tokens and cost replace the estimates."""
        now = self.clock()
        actual = usage.total_tokens if usage is not None else 0
        dirty = self.counters.dirty
        for bucket, charged in lease.charges:
            if actual != charged:
                bucket.adjust(now, actual - charged)
                dirty.add(bucket)
        attempts = lease.upstream
        for i, charges in enumerate(attempts):
            for c in charges:
                # Only the last attempt produced the usage; earlier ones failed over.
                real = actual if i == len(attempts) - 1 else 0
                if real != c.tokens:
                    c.bucket.adjust(now, real - c.tokens)
                    dirty.add(c.bucket)
        lease.give_back()

        key, team = lease.key, lease.team
        if key is None:
            return
        day = self.calendar.day(lease.ts)
        for scope, name, limits in (
            ("key", key.id, key.limits),
            ("team", key.team, team.limits if team is not None else NO_LIMITS),
        ):
            if not cost:  # free, failed before any usage, or unpriced (None)
                continue
            spend = self.spend_of(scope, name)
            spend.add(day, cost)
            budget = limits.budget_nusd
            if budget is None:
                continue
            period = self._period(limits, now)
            if not period.first_ord <= day < period.end_ord:
                continue  # a call from the previous period that ended after it
            thresholds = limits.alert_at if limits.alert_at is not None else self._default_alerts
            if thresholds:
                self.alerts.check(
                    scope, name, key.team, period, spend.total(period), budget, thresholds, now
                )

    # -- provider quotas -----------------------------------------------------------

    @asynccontextmanager
    async def slot(self, lease: LocalLease, provider: str, model: str) -> AsyncIterator[None]:
        """Wait (by the lease's priority) for room under the provider's quotas."""
        charges = await self.quotas.acquire(provider, model, lease.priority, lease.tokens)
        lease.upstream.append(charges)
        yield

    async def upstream_feedback(
        self, provider: str, model: str, status: int, retry_after: str | None
    ) -> None:
        """Learn from the provider's answer: a 429 pauses the model for its Retry-After."""
        if status == 429:
            self.quotas.feedback(provider, model, status, retry_after)
