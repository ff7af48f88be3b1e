"""Prometheus metrics kept in plain dicts, turned into metric families only when scraped.

The hot path pays a few dict operations per call: :meth:`Metrics.record` is called by
the accountant once a call's ledger row is made, :meth:`Metrics.refused` by the
pipeline when the limits engine refuses a call. Nothing takes a lock and nothing is
formatted until ``GET /metrics`` asks (:meth:`Metrics.collect`, a
``prometheus_client`` collector on a registry of its own).

Label values are bounded: a team comes from the key store, a provider from the config,
a status is a class (``2xx``), and a model is the upstream model a target named (never
the client's text when routing failed). Each label still keeps at most a fixed number
of distinct values (:class:`Bounded`); later ones are counted under ``other``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aigw.model import LedgerRow
from aigw.routing.health import CLOSED, HALF_OPEN, OPEN, BreakerView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
NONE = "-"
NANO = 1e-9

# Seconds; a request may stream for minutes, its first token should come in seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

MAX_TEAMS = 500
MAX_MODELS = 200
MAX_PROVIDERS = 100
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

# The limits engine's refusals, by error code (and type for the rate limits).
REFUSAL_REASONS = {
    "budget_exceeded": "budget",
    "budget_unpriced_model": "unpriced",
    "upstream_quota_exceeded": "provider_quota",
}
RATE_REASONS = {"requests": "rpm", "tokens": "tpm"}


class Bounded:
    """Keeps at most ``limit`` distinct values of one label; later ones become ``other``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        seen = self.seen
        if value in seen:
            return value
        if len(seen) >= self.limit:
            return OTHER
        seen.add(value)
        return value


class FailedAttempt(Protocol):
    """What metrics read of a failed upstream attempt (pipeline.context.Attempt)."""

    @property
    def target(self) -> str: ...  # provider/model

    @property
    def kind(self) -> str: ...


class Histogram:
    """Counts per bucket (not cumulative), a sum and a count."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.total = 0.0

    def observe(self, bounds: Sequence[float], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1
        self.total += value

    def buckets(self, bounds: Sequence[float]) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


# Indices of one (team, model, provider, status) series' counters.
REQ, PROMPT, COMPLETION, COST, HITS, SAVED = range(6)
MAX_SERIES = 20_000


class _Series:
    """What one raw label combination updates."""

    __slots__ = ("calls", "labels", "latency", "ttft")

    def __init__(
        self,
        labels: tuple[str, str, str, str],
        calls: list[int],
        latency: Histogram | None,
        ttft: Histogram | None,
    ) -> None:
        self.labels = labels
        self.calls = calls
        self.latency = latency
        self.ttft = ttft


class Metrics:
    """Every counter of one gateway process, and the collector that exposes them."""

    def __init__(
        self,
        breakers: Callable[[], dict[str, BreakerView]] | None = None,
        budgets: Callable[[], Iterable[tuple[str, float]]] | None = None,
    ) -> None:
        self.breakers = breakers
        self.budgets = budgets
        # Run before each scrape (shared counters: fetch the spend all processes share).
        self.before_scrape: Callable[[], Awaitable[None]] | None = None
        self.team = Bounded(MAX_TEAMS)
        self.model = Bounded(MAX_MODELS)
        self.provider = Bounded(MAX_PROVIDERS)
        # (team, model, provider, status class) -> [REQ, PROMPT, COMPLETION, COST, HITS, SAVED]
        self.calls: dict[tuple[str, str, str, str], list[int]] = {}
        # Raw (team, upstream model, provider, status // 100) -> its counters: the hot
        # path's one lookup (labels bounded and histograms found once per series).
        self._series: dict[tuple[str | None, str | None, str | None, int], _Series] = {}
        self.unpriced: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.ttft: dict[tuple[str, str], Histogram] = {}
        self.upstream_errors: dict[tuple[str, str], int] = {}  # (provider, kind)
        self.retries: dict[str, int] = {}  # provider
        self.failovers: dict[str, int] = {}  # provider failed over from
        self.refusals: dict[tuple[str, str], int] = {}  # (team, reason)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    # -- the hot path ----------------------------------------------------------------

    def record(self, row: LedgerRow, ttft: float | None, failed: Sequence[FailedAttempt]) -> None:
        """One call as its ledger row says, its time to first token (seconds) and the
        attempts that failed before it was answered (or not)."""
        raw = (row.team, row.upstream_model, row.provider, row.status // 100)
        s = self._series.get(raw)
        if s is None:
            s = self._series_of(raw)
        c = s.calls
        c[REQ] += 1
        c[PROMPT] += row.prompt_tokens
        c[COMPLETION] += row.completion_tokens
        cost = row.cost_nusd
        if cost is None:
            self.unpriced[s.labels[:3]] = self.unpriced.get(s.labels[:3], 0) + 1
        else:
            c[COST] += cost
        if row.cache == "hit":
            c[HITS] += 1
            c[SAVED] += row.saved_nusd
        if s.latency is not None:
            s.latency.observe(LATENCY_BUCKETS, row.latency_ms / 1000)
            if ttft is not None and s.ttft is not None:
                s.ttft.observe(TTFT_BUCKETS, ttft)
        if failed:
            self._failed(failed, row)

    def _series_of(self, raw: tuple[str | None, str | None, str | None, int]) -> _Series:
        """The counters of a call's raw label values (made on first use; remembered for
        at most MAX_SERIES distinct raw values, which are bounded anyway)."""
        team, upstream_model, provider_name, status = raw
        model, provider = self.model(upstream_model), self.provider(provider_name)
        labels = (self.team(team), model, provider, STATUS_CLASSES.get(status, "5xx"))
        calls = self.calls.get(labels)
        if calls is None:
            calls = self.calls[labels] = [0, 0, 0, 0, 0, 0]
        latency = ttft = None
        if provider_name is not None:
            target = (model, provider)
            latency = self.latency.get(target)
            if latency is None:
                latency = self.latency[target] = Histogram(len(LATENCY_BUCKETS) + 1)
            ttft = self.ttft.get(target)
            if ttft is None:
                ttft = self.ttft[target] = Histogram(len(TTFT_BUCKETS) + 1)
        s = _Series(labels, calls, latency, ttft)
        if len(self._series) < MAX_SERIES:
            self._series[raw] = s
        return s

    def _failed(self, failed: Sequence[FailedAttempt], row: LedgerRow) -> None:
        errors = self.upstream_errors
        answered = (
            f"{row.provider}/{row.upstream_model}" if row.status < 400 and row.provider else None
        )
        for i, a in enumerate(failed):
            provider = self.provider(a.target.partition("/")[0])
            ekey = (provider, a.kind)
            errors[ekey] = errors.get(ekey, 0) + 1
            nxt = failed[i + 1].target if i + 1 < len(failed) else answered
            if nxt is None:
                continue  # the last attempt failed: nothing came after it
            table = self.retries if nxt == a.target else self.failovers
            table[provider] = table.get(provider, 0) + 1

    def refused(self, team: str | None, code: str | None, kind: str | None) -> None:
        """A call the limits engine refused; ``code``/``kind``: its error's code and type.
        Other errors are not refusals and are ignored."""
        reason = REFUSAL_REASONS.get(code or "")
        if reason is None:
            if code != "rate_limit_exceeded":
                return
            reason = RATE_REASONS.get(kind or "", "parallel")
        key = (self.team(team), reason)
        self.refusals[key] = self.refusals.get(key, 0) + 1

    # -- scraping --------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, m: Metrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Metric]:
        m = self.m
        labels = ["team", "model", "provider", "status"]
        requests = CounterMetricFamily(
            "aigw_requests", "Calls recorded in the ledger.", labels=labels
        )
        tokens = CounterMetricFamily(
            "aigw_tokens", "Tokens billed, by kind.", labels=[*labels[:3], "kind"]
        )
        cost = CounterMetricFamily(
            "aigw_cost_usd", "Cost of the calls in USD (priced calls).", labels=labels[:3]
        )
        hits = CounterMetricFamily(
            "aigw_cache_hits", "Calls answered from the response cache.", labels=labels[:3]
        )
        saved = CounterMetricFamily(
            "aigw_cache_saved_usd", "What cache hits would have cost, USD.", labels=labels[:3]
        )
        by_target: dict[tuple[str, str, str], list[int]] = {}
        for (team, model, provider, status), c in m.calls.items():
            requests.add_metric([team, model, provider, status], c[REQ])
            t = by_target.get((team, model, provider))
            if t is None:
                t = by_target[(team, model, provider)] = [0, 0, 0, 0, 0, 0]
            for i in range(6):
                t[i] += c[i]
        for key, t in by_target.items():
            tokens.add_metric([*key, "prompt"], t[PROMPT])
            tokens.add_metric([*key, "completion"], t[COMPLETION])
            cost.add_metric(list(key), t[COST] * NANO)
            hits.add_metric(list(key), t[HITS])
            saved.add_metric(list(key), t[SAVED] * NANO)
        yield requests
        yield tokens
        yield cost
        unpriced = CounterMetricFamily(
            "aigw_unpriced_requests", "Calls whose model has no price.", labels=labels[:3]
        )
        for ukey, n in m.unpriced.items():
            unpriced.add_metric(list(ukey), n)
        yield unpriced
        yield hits
        yield saved
        for name, doc, table, bounds in (
            (
                "aigw_request_duration_seconds",
                "Time from the request's arrival to its ledger row.",
                m.latency,
                LATENCY_BUCKETS,
            ),
            (
                "aigw_time_to_first_token_seconds",
                "Time from the request's arrival to the answer's first content.",
                m.ttft,
                TTFT_BUCKETS,
            ),
        ):
            hist = HistogramMetricFamily(name, doc, labels=["model", "provider"])
            for (model, provider), h in table.items():
                hist.add_metric([model, provider], h.buckets(bounds), h.total)
            yield hist
        errors = CounterMetricFamily(
            "aigw_upstream_errors",
            "Failed upstream attempts, by provider and what failed.",
            labels=["provider", "kind"],
        )
        for (provider, kind), n in m.upstream_errors.items():
            errors.add_metric([provider, kind], n)
        yield errors
        for name, doc, counts in (
            ("aigw_retries", "Attempts retried at the same target.", m.retries),
            ("aigw_failovers", "Attempts that moved on to another target.", m.failovers),
        ):
            family = CounterMetricFamily(name, doc, labels=["provider"])
            for provider, n in counts.items():
                family.add_metric([provider], n)
            yield family
        refusals = CounterMetricFamily(
            "aigw_limit_refusals",
            "Calls refused by the limits engine, by reason.",
            labels=["team", "reason"],
        )
        for (team, reason), n in m.refusals.items():
            refusals.add_metric([team, reason], n)
        yield refusals
        if m.breakers is not None:
            breakers = GaugeMetricFamily(
                "aigw_circuit_breaker_state",
                "1 for the state each target's circuit breaker is in.",
                labels=["provider", "model", "state"],
            )
            for target, view in list(m.breakers().items())[:MAX_MODELS]:
                provider, _, model = target.partition("/")
                for state in (CLOSED, OPEN, HALF_OPEN):
                    breakers.add_metric([provider, model, state], float(view.state == state))
            yield breakers
        if m.budgets is not None:
            budget = GaugeMetricFamily(
                "aigw_budget_used_ratio",
                "Spend over budget in each team's current period (1 = used up).",
                labels=["team"],
            )
            for team, ratio in list(m.budgets())[:MAX_TEAMS]:
                budget.add_metric([team], ratio)
            yield budget
