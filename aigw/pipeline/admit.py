"""Step 3, admit: rate limits, concurrency, hard budgets and provider quotas.

Everything is decided in memory, in one synchronous stretch of :meth:`Admission.admit`
(no await between checking and taking), so concurrent requests cannot both take the
last unit: with ``--rpm 60``, 200 simultaneous calls admit exactly 60.

For each call the engine looks at the key's own limits and at its team's:

* requests and tokens per minute (GCRA buckets, :mod:`aigw.limits.gcra`). Tokens
  are counted up front as the prompt estimate plus ``max_tokens`` (or, without it,
  ``[limits] default_output_tokens`` capped by the model's maximum output) and
  settled to the real usage when the call ends;
* requests in flight (``max_parallel``);
* the hard budget of the current calendar period: the call's worst-case cost is
  reserved and replaced by the real cost when it ends (:mod:`aigw.limits.budgets`).

It returns a :class:`Lease`: what was taken, to be settled exactly once by the
accountant, and the ``x-ratelimit-*`` headers for the response. The provider's quota
is taken later, in :meth:`Admission.upstream_slot`, right before the call is sent.

Nothing here touches SQLite per request. Counters, spend and fired alerts are loaded
by :meth:`start`, written back in batches by :meth:`run` and by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from typing import TYPE_CHECKING

from aigw.config import Config
from aigw.errors import GatewayError
from aigw.limits.alerts import REFUSED, Alerts
from aigw.limits.budgets import Spend, money, output_bound, worst_case
from aigw.limits.gcra import Bucket, Counters, go_duration
from aigw.limits.periods import Calendar, Period
from aigw.limits.quotas import Charge, Quotas
from aigw.memo import Memo
from aigw.model import NO_LIMITS, Limits, TeamRecord
from aigw.pricing import Price, PriceBook
from aigw.store import Database
from aigw.store.sqlite import keys as keystore
from aigw.store.sqlite import limits as limits_store
from aigw.store.sqlite import teams as teamstore

if TYPE_CHECKING:
    from aigw.model import KeyRecord
    from aigw.pipeline.context import Context
    from aigw.providers import Provider

log = logging.getLogger("aigw.limits")

POLL_SECONDS = 0.5
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
        return f"team {self.name}" if self.kind == "team" else f"key {self.name} (team {team})"


class Lease:
    """What admission took for one call; settled once when the call ends.

    ``Lease()`` with no admission is a no-op lease (nothing to give back).
    """

    __slots__ = (
        "_admission",
        "_headers",
        "charges",
        "key",
        "parallel",
        "priority",
        "reserved",
        "settled",
        "team",
        "tokens",
        "upstream",
    )

    def __init__(
        self,
        admission: Admission | None = None,
        key: KeyRecord | None = None,
        team: TeamRecord | None = None,
        priority: str = "normal",
        tokens: int = 0,
    ) -> None:
        self._admission = admission
        self.key = key
        self.team = team
        self.priority = priority
        self.tokens = tokens  # estimated tokens taken from tokens-per-minute limits
        self.charges: list[tuple[Bucket, float]] = []  # tpm buckets and what they got
        self.parallel: list[Scope] = []  # scopes whose in-flight count this holds
        self.reserved: list[tuple[Spend, int]] = []  # budget reservations
        self.upstream: list[list[Charge]] = []  # provider quota charges, per attempt
        self._headers: dict[str, str] = {}
        self.settled = admission is None

    def headers(self) -> dict[str, str]:
        """Rate-limit headers for the response (x-ratelimit-*, as OpenAI sends them)."""
        return self._headers

    def settle(self, ctx: Context) -> None:
        """Replace the reservations by the real usage and cost in ``ctx``. Idempotent;
        never raises (a failure is logged: the answer must still reach the client)."""
        if self.settled:
            return
        self.settled = True
        assert self._admission is not None
        try:
            self._admission.settle(self, ctx)
        except Exception:
            log.exception("request %s: settling its limits failed", ctx.request_id)
            self._release()

    def _release(self) -> None:
        """Give back the in-flight slots and reservations without charging anything."""
        for scope in self.parallel:
            scope.inflight -= 1
        self.parallel = []
        for spend, amount in self.reserved:
            spend.reserved -= amount
        self.reserved = []

    def __del__(self) -> None:
        # A safety net: a call that ends without being settled (a bug elsewhere) must
        # not hold an in-flight slot or a budget reservation forever.
        if not self.settled:
            self.settled = True
            try:
                self._release()
                log.error("a call was admitted but never settled; released its reservations")
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


class Admission:
    """The limits engine behind the admit step and the provider quota queue."""

    def __init__(self, db: Database, config: Config, prices: PriceBook) -> None:
        self.db = db
        self.config = config
        self.prices = prices
        self.clock: Callable[[], float] = time.time
        self.calendar = Calendar(config.budgets.timezone)
        self.counters = Counters(config.limits.burst)
        self.keys: dict[str, Scope] = {}
        self.team_scopes: dict[str, Scope] = {}
        self.teams: dict[str, TeamRecord] = {}
        self.spend: dict[tuple[str, str], Spend] = {}
        webhook = os.environ.get("AIGW_ALERTS_WEBHOOK_URL") or config.alerts.webhook_url
        self.alerts = Alerts(config.alerts, self.calendar, webhook)
        self.quotas = Quotas(config, self.counters, self._now)
        self.generation = -1
        self._model_globs: dict[tuple[str, ...], Memo[str, bool]] = {}
        self._default_period = config.budgets.period
        self._default_alerts = tuple(config.budgets.alert_at)
        self._horizon = 0
        self._run_task: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return self.clock()  # late-bound, so tests can freeze time

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Load teams, persisted counters, this period's spend and fired alerts."""
        now = self.clock()
        await self.refresh()
        self.counters.restored = await limits_store.load_counters(self.db, now)
        # Rebuilt so the quota buckets (made from the config) pick up their saved state.
        self.quotas = Quotas(self.config, self.counters, self._now)
        await self._load_spend(now)
        periods = [self.calendar.period(kind, now).id for kind in ("day", "week", "month")]
        self.alerts.load(await limits_store.load_alerts(self.db, periods))

    async def _load_spend(self, now: float) -> None:
        cal = self.calendar
        day = cal.horizon(now)
        self._horizon = day.toordinal()
        today = cal.local_date(now).toordinal()
        while day.toordinal() <= today:
            start, end = cal.midnight(day), cal.midnight(day.fromordinal(day.toordinal() + 1))
            ordinal = day.toordinal()
            for row in await limits_store.spend_between(self.db, start, end):
                for scope, name in (("team", row.team), ("key", row.key_id)):
                    if name is None:
                        continue
                    self._spend(scope, name).add(ordinal, row.cost_nusd)
            day = day.fromordinal(ordinal + 1)

    async def refresh(self) -> bool:
        """Reload the teams if any key or team changed; True when it did."""
        gen = await keystore.generation(self.db)
        if gen == self.generation:
            return False
        self.teams = {t.name: t for t in await teamstore.list_all(self.db)}
        self.generation = gen
        return True

    async def run(self) -> None:
        """Background work until cancelled: batched writes, team reloads, webhooks."""
        self._run_task = asyncio.current_task()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._persist_forever())
            tg.create_task(self._watch_forever())
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

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if await self.refresh():
                    log.info("reloaded %d team(s)", len(self.teams))
            except Exception:
                log.exception("could not reload teams; will retry")

    async def persist(self) -> None:
        """Write changed counters and fired alerts (one batch); prune past periods."""
        now = self.clock()
        busy, idle = self.counters.snapshot(now)
        alerts, self.alerts.unsaved = self.alerts.unsaved, []
        try:
            await limits_store.save_counters(self.db, busy, idle)
            await limits_store.save_alerts(self.db, alerts)
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

    # -- the admit step ------------------------------------------------------------

    def allows_model(self, key: KeyRecord, model: str) -> bool:
        """Whether ``key`` may use ``model``: it must match one of the key's ``--models``
        globs and one of its team's (no globs = any model). An alias also matches by
        the PROVIDER/MODEL it stands for."""
        team = self.teams.get(key.team)
        for globs in (key.limits.models, team.limits.models if team else None):
            if globs is not None and not self._matches(globs, model):
                return False
        return True

    def _matches(self, globs: tuple[str, ...], model: str) -> bool:
        memo = self._model_globs.get(globs)
        if memo is None:
            # Keyed by client-chosen model names: bounded in size (aigw.memo).
            memo = self._model_globs[globs] = Memo(partial(self._match, globs), len)
        return memo(model)

    def _match(self, globs: tuple[str, ...], model: str) -> bool:
        names = [model]
        alias = self.config.models.get(model)
        if alias is not None:
            names.append(f"{alias.provider}/{alias.model}")
        return any(fnmatch.fnmatchcase(n, g) for n in names for g in globs)

    def _spend(self, scope: str, name: str) -> Spend:
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

    async def admit(self, ctx: Context) -> Lease:
        """Take capacity for ``ctx`` or raise GatewayError(429)."""
        key = ctx.key
        assert key is not None
        team = self.teams.get(key.team)
        team_limits = team.limits if team is not None else NO_LIMITS
        priority = key.limits.priority or team_limits.priority or "normal"
        target = ctx.target
        price: Price | None = None
        if target is not None:
            price = self.prices.lookup(target.provider.name, target.upstream_model)
        tokens = ctx.prompt_estimate + self._output_estimate(ctx, price)
        if key.limits.empty and team_limits.empty:
            # Nothing to check; settling still records the spend and provider tokens.
            return Lease(self, key, team, priority, tokens)
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
        budgets = self._check_budgets(ctx, key, team_limits, price, now)
        for s in scopes:
            limit = s.limits.max_parallel
            if limit is not None and s.inflight >= limit:
                raise self._too_many_parallel(s, key.team, limit)
        self._check_rates(scopes, tokens, key.team, now)

        # Every check passed: take.
        lease = Lease(self, key, team, priority, tokens)
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

    def _output_estimate(self, ctx: Context, price: Price | None) -> int:
        """Output tokens counted up front against tokens-per-minute limits and quotas."""
        if ctx.max_output is not None:
            return ctx.max_output
        default = self.config.limits.default_output_tokens
        if price is not None and price.max_output_tokens is not None:
            return min(default, price.max_output_tokens)
        return default

    def _check_budgets(
        self,
        ctx: Context,
        key: KeyRecord,
        team_limits: Limits,
        price: Price | None,
        now: float,
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
        target = ctx.target
        if target is None:
            return []
        if price is None:
            if cfg.unpriced == "allow":
                return []
            raise GatewayError(
                403,
                f"The model '{ctx.model}' has no known price, so its cost cannot be "
                f"checked against the budget of {checks[-1][0]} {checks[-1][1]}. Add a "
                f'[prices."{target.provider.name}/{target.upstream_model}"] entry to the '
                'gateway\'s config.toml (or set [budgets] unpriced = "allow").',
                type="insufficient_quota",
                code="budget_unpriced_model",
                param="model",
            )
        output = output_bound(
            price,
            ctx.max_output,
            target.provider.type,
            cfg,
            self.config.translation.default_max_tokens,
        )
        worst = worst_case(price, ctx.prompt_bound, output)
        out: list[tuple[Spend, int]] = []
        for scope, name, limits in checks:
            budget = limits.budget_nusd
            assert budget is not None
            spend = self._spend(scope, name)
            period = self._period(limits, now)
            spent = spend.total(period)
            if spent + spend.reserved + worst > budget:
                raise self._over_budget(
                    scope, name, key.team, limits, period, spent, spend.reserved, worst, ctx
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
        unit = "RPM" if what == "requests" else "TPM"
        asked = 1 if what == "requests" else min(tokens, bucket.capacity)
        used = bucket.used(now)
        used = round(used) if abs(used - round(used)) < 0.01 else math.ceil(used)
        raise GatewayError(
            429,
            f"Rate limit reached for {culprit.who(team)} on {what} per minute ({unit}): "
            f"Limit {bucket.limit}, Used {used}, Requested {asked}. "
            f"Please try again in {go_duration(longest)}.",
            type=what,
            code="rate_limit_exceeded",
            headers={**self._headers(scopes, now), **_retry_after(longest)},
        )

    def _too_many_parallel(self, s: Scope, team: str, limit: int) -> GatewayError:
        return GatewayError(
            429,
            f"Too many concurrent requests for {s.who(team)}: at most {limit} may be in "
            "flight at once. Please try again when one has finished.",
            type="requests",
            code="rate_limit_exceeded",
            headers=_retry_after(1.0),
        )

    def _over_budget(
        self,
        scope: str,
        name: str,
        team: str,
        limits: Limits,
        period: Period,
        spent: int,
        reserved: int,
        worst: int,
        ctx: Context,
    ) -> GatewayError:
        budget = limits.budget_nusd
        assert budget is not None
        resets = self.calendar.reset_text(period)
        who = f"team {name}" if scope == "team" else f"key {name} (team {team})"
        thresholds = limits.alert_at if limits.alert_at is not None else self._default_alerts
        if spent + worst > budget and thresholds:
            # Out of budget, not just held up by calls in flight: say so, once a period.
            self.alerts.fire(scope, name, team, period, REFUSED, spent, budget, self.clock())
        left = max(0, budget - spent - reserved)
        message = (
            f"Budget exceeded for {who}: this request could cost up to {money(worst)} and "
            f"{money(left)} of the {money(budget)} {period.kind} budget is left "
            f"({money(spent)} spent, {money(reserved)} held by requests in flight). "
        )
        if spent + worst <= budget:
            # Only the reservations of calls still running are in the way.
            message += "It may fit once requests in flight finish; try again shortly."
            wait = 1.0
        else:
            message += f"The budget resets at {resets}."
            if ctx.max_output is None:
                message += " Setting max_tokens lowers the worst case."
            wait = max(1.0, period.end_ts - self.clock())
        return GatewayError(
            429,
            message,
            type="insufficient_quota",
            code="budget_exceeded",
            headers=_retry_after(wait),
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

    def settle(self, lease: Lease, ctx: Context) -> None:
        """Called by :meth:`Lease.settle`: real tokens and cost replace the estimates."""
        now = self.clock()
        usage = ctx.usage
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
        lease._release()

        key, team = lease.key, lease.team
        if key is None:
            return
        cost = ctx.cost_nusd
        day = self.calendar.day(ctx.ts)
        for scope, name, limits in (
            ("key", key.id, key.limits),
            ("team", key.team, team.limits if team is not None else NO_LIMITS),
        ):
            if not cost:  # free, failed before any usage, or unpriced (None)
                continue
            spend = self._spend(scope, name)
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

    def upstream_slot(self, ctx: Context, provider: Provider) -> AbstractAsyncContextManager[None]:
        """Wait (by priority) for the provider's quota before calling it."""
        lease = ctx.lease
        target = ctx.target
        if lease is None or target is None or not self.quotas.gates:
            return _NO_SLOT  # the common case: no generator-based context per request
        model = target.upstream_model if target.provider is provider else ""
        return self._slot(provider.name, model, lease)

    @asynccontextmanager
    async def _slot(self, provider: str, model: str, lease: Lease) -> AsyncIterator[None]:
        charges = await self.quotas.acquire(provider, model, lease.priority, lease.tokens)
        lease.upstream.append(charges)
        yield

    def upstream_feedback(
        self, ctx: Context, provider: Provider, status: int, retry_after: str | None
    ) -> None:
        """Learn from the provider's answer: a 429 pauses the model for its Retry-After."""
        if status != 429:
            return
        target = ctx.target
        model = target.upstream_model if target is not None and target.provider is provider else ""
        self.quotas.feedback(provider.name, model, status, retry_after)


_NO_SLOT = nullcontext()


def _retry_after(seconds: float) -> dict[str, str]:
    """Retry-After in whole seconds (rounded up) and, for the OpenAI SDKs, in ms."""
    return {
        "Retry-After": str(max(1, math.ceil(seconds - 1e-9))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000 - 1e-6))),
    }
