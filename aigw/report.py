"""Aggregations shared by `aigw report` (and later the dashboard and /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aigw.config import Config
from aigw.limits.alerts import REFUSED
from aigw.limits.periods import Calendar, Period
from aigw.model import REPORT_GROUPS, Limits, ReportRow
from aigw.pricing import format_usd

if TYPE_CHECKING:  # types only: `aigw teams --help` need not load the store
    from aigw.store.base import LedgerQueries, Store

BY = REPORT_GROUPS


@dataclass(slots=True)
class Report:
    by: str
    since: float | None
    until: float | None
    rows: list[ReportRow]

    @property
    def total(self) -> ReportRow:
        t = ReportRow("total", 0, 0, 0, 0, 0, 0)
        for r in self.rows:
            t.requests += r.requests
            t.errors += r.errors
            t.prompt_tokens += r.prompt_tokens
            t.completion_tokens += r.completion_tokens
            t.cost_nusd += r.cost_nusd
            t.unpriced += r.unpriced
            t.cache_hits += r.cache_hits
            t.cache_misses += r.cache_misses
            t.saved_nusd += r.saved_nusd
        return t


async def build(
    ledger: LedgerQueries, *, by: str, since: float | None, until: float | None = None
) -> Report:
    if by not in REPORT_GROUPS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(BY)}")
    rows = await ledger.summarize(by=by, since=since, until=until)
    return Report(by, since, until, rows)


def known_cost(r: ReportRow) -> int | None:
    """The group's cost in nano-USD, or None when it is unknown: the group has unpriced
    requests and no priced spend at all (showing $0 would claim the calls were free).
    A group with both priced and unpriced requests shows the priced part."""
    return None if r.unpriced and r.cost_nusd == 0 else r.cost_nusd


def money(nusd: int | None) -> str | None:
    """nano-USD as an exact decimal string of USD with 9 places (None stays None).
    JSON floats lose cents above about $9M (2**53 nano-USD), so scripts get strings."""
    return None if nusd is None else format_usd(nusd, 9)


def row_dict(r: ReportRow, by: str) -> dict[str, Any]:
    """One group as scripts see it: ``cost_usd`` an exact decimal string, ``cost_nusd``
    the exact integer, both null when the cost is unknown (see :func:`known_cost`)."""
    cost = known_cost(r)
    return {
        "by": by,
        "name": r.name,
        "requests": r.requests,
        "errors": r.errors,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cost_usd": money(cost),
        "cost_nusd": cost,
        "unpriced_requests": r.unpriced,
        "cache_hits": r.cache_hits,
        "cache_misses": r.cache_misses,
        "cache_hit_rate": None if r.cache_hit_rate is None else round(r.cache_hit_rate, 4),
        "saved_usd": money(r.saved_nusd),
        "saved_nusd": r.saved_nusd,
    }


# -- budgets -------------------------------------------------------------------------


@dataclass(slots=True)
class BudgetRow:
    """One team's or key's budget in its current period."""

    scope: str  # team | key
    name: str  # team name or key id
    team: str
    period: Period
    budget_nusd: int
    spent_nusd: int
    unpriced: int
    alerts: list[int]  # thresholds that fired this period
    refused: bool  # a request was refused for this budget this period
    resets: str

    @property
    def remaining_nusd(self) -> int:
        return max(0, self.budget_nusd - self.spent_nusd)


async def budgets(store: Store, cfg: Config, now: float) -> list[BudgetRow]:
    """Every team budget, then every active key's, for the period containing ``now``.

    Spend is summed from the ledger, so it is exact and includes every committed call
    (a running server also holds reservations for calls in flight; those are not here).
    """
    cal = Calendar(cfg.budgets.timezone)
    subjects: list[tuple[str, str, str, Limits]] = [
        ("team", t.name, t.name, t.limits) for t in await store.teams.list_all()
    ]
    subjects += [
        ("key", k.id, k.team, k.limits)
        for k in await store.keys.list_all()
        if k.state(now) == "active"
    ]
    rows: list[BudgetRow] = []
    # One spend query per distinct period (not one per budget): per (team, key) pair.
    spend: dict[tuple[float, float], dict[tuple[str, str | None], tuple[int, int]]] = {}
    for scope, name, team, limits in subjects:
        if limits.budget_nusd is None:
            continue
        period = cal.period(limits.period or cfg.budgets.period, now)
        span = (period.start_ts, period.end_ts)
        if span not in spend:
            totals: dict[tuple[str, str | None], tuple[int, int]] = {}
            for s in await store.limit_state.spend_between(*span):
                for k in (("team", s.team), ("key", s.key_id)):
                    if k[1] is not None:
                        c, u = totals.get(k, (0, 0))
                        totals[k] = (c + s.cost_nusd, u + s.unpriced)
            spend[span] = totals
        spent, unpriced = spend[span].get((scope, name), (0, 0))
        fired = await store.reports.alert_history(scope, name, period.id)
        rows.append(
            BudgetRow(
                scope,
                name,
                team,
                period,
                limits.budget_nusd,
                spent,
                unpriced,
                sorted(int(a.mark) for a in fired if a.mark.isdigit()),
                any(a.mark == REFUSED for a in fired),
                cal.reset_text(period),
            )
        )
    return rows


def budget_dict(b: BudgetRow) -> dict[str, Any]:
    """One budget as scripts see it: USD as exact decimal strings, nano-USD integers
    beside them."""
    return {
        "scope": b.scope,
        "name": b.name,
        "team": b.team,
        "period": b.period.kind,
        "period_label": b.period.label,
        "period_start": datetime.fromtimestamp(b.period.start_ts, UTC).isoformat(),
        "resets_at": datetime.fromtimestamp(b.period.end_ts, UTC).isoformat(),
        "budget_usd": money(b.budget_nusd),
        "spent_usd": money(b.spent_nusd),
        "remaining_usd": money(b.remaining_nusd),
        "budget_nusd": b.budget_nusd,
        "spent_nusd": b.spent_nusd,
        "remaining_nusd": b.remaining_nusd,
        "used_percent": round(b.spent_nusd * 100 / b.budget_nusd, 2) if b.budget_nusd else None,
        "unpriced_requests": b.unpriced,
        "alerts_fired": b.alerts,
        "refused": b.refused,
    }


async def report_json(
    store: Store, cfg: Config, *, by: str, since: float | None, until: float | None, now: float
) -> list[dict[str, Any]]:
    """The rows `aigw report --json` prints: one dict per group (:func:`row_dict`);
    a team's or key's row carries its current period's budget (or null)."""
    rep = await build(store.reports, by=by, since=since, until=until)
    rows = [row_dict(r, by) for r in rep.rows]
    if by in ("team", "key"):
        own = {b.name: budget_dict(b) for b in await budgets(store, cfg, now) if b.scope == by}
        for r in rows:
            r["budget"] = own.get(r["name"])
    return rows
