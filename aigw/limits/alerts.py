"""Budget alerts: each threshold at most once per period, logged, posted, remembered.

An alert fires when a team's or key's settled spend crosses one of its thresholds
(percent of the budget), and once more -- mark ``refused`` -- the first time in a
period a request is refused for the budget: with hard budgets spend often stops
just short of 100 %, and that refusal is the moment someone needs to know.

Firing is synchronous and cheap (a set lookup, a log line, a queue put). Delivery
to the webhook happens in a background task that reads a bounded queue and retries
with exponential backoff; a full queue drops the webhook (the log line and the
record for `aigw report` remain), so alerts never block or slow a request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from aigw.config import AlertsConfig
from aigw.limits.budgets import money
from aigw.limits.periods import Calendar, Period
from aigw.model import AlertRow
from aigw.pricing import format_usd

if TYPE_CHECKING:  # aiohttp is imported when a webhook is posted: the CLI never needs it
    import aiohttp

log = logging.getLogger("aigw.alerts")

REFUSED = "refused"
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass(frozen=True, slots=True)
class Alert:
    scope: str  # team | key
    name: str  # team name or key id
    team: str
    period: Period
    mark: str  # threshold percent or REFUSED
    spent_nusd: int
    budget_nusd: int
    fired_at: float
    resets: str  # '2026-12-01 00:00 UTC'

    @property
    def who(self) -> str:
        return (
            f"team {self.name}" if self.scope == "team" else f"key {self.name} (team {self.team})"
        )

    @property
    def text(self) -> str:
        budget = f"{money(self.budget_nusd)} {_ADJECTIVE[self.period.kind]} budget"
        pct = self.spent_nusd * 100 // self.budget_nusd if self.budget_nusd else 100
        if self.mark == REFUSED:
            return (
                f"aigw: {self.who} is out of budget: a request was refused because it could "
                f"pass the {budget} ({money(self.spent_nusd)} spent, {pct}%, in "
                f"{self.period.label}). The budget resets {self.resets}."
            )
        return (
            f"aigw: {self.who} has used {self.mark}% of its {budget}: "
            f"{money(self.spent_nusd)} spent in {self.period.label} ({pct}%). "
            f"The budget resets {self.resets}."
        )

    def payload(self) -> dict[str, Any]:
        """The webhook body: Slack-compatible ``text`` plus fields for machines."""
        return {
            "text": self.text,
            "event": "budget.refused" if self.mark == REFUSED else "budget.threshold",
            "scope": self.scope,
            "name": self.name,
            "team": self.team,
            "threshold": None if self.mark == REFUSED else int(self.mark),
            "spent_usd": format_usd(self.spent_nusd, 9),
            "budget_usd": format_usd(self.budget_nusd, 9),
            "period": self.period.kind,
            "period_label": self.period.label,
            "period_start": datetime.fromtimestamp(self.period.start_ts, UTC).isoformat(),
            "resets_at": datetime.fromtimestamp(self.period.end_ts, UTC).isoformat(),
            "fired_at": datetime.fromtimestamp(self.fired_at, UTC).isoformat(),
        }

    def row(self) -> AlertRow:
        return AlertRow(
            self.scope,
            self.name,
            self.period.id,
            self.mark,
            self.fired_at,
            self.spent_nusd,
            self.budget_nusd,
        )


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class Alerts:
    """Which alerts fired, what still has to be written, and webhook delivery."""

    def __init__(self, cfg: AlertsConfig, calendar: Calendar, webhook_url: str) -> None:
        self.cfg = cfg
        self.calendar = calendar
        self.webhook_url = webhook_url
        self.fired: set[tuple[str, str, str, str]] = set()  # scope, name, period id, mark
        self.unsaved: list[AlertRow] = []
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=cfg.queue_size)
        self.backoff = 1.0  # first retry delay in seconds, doubled per attempt
        self.max_backoff = 60.0
        self.delivered = 0
        self.failed = 0
        self._session: aiohttp.ClientSession | None = None
        # Several gateway processes share counters: only the one that claims an alert
        # posts it (aigw.limits.shared). None: this process alone decides.
        self.claim: Callable[[Alert], Awaitable[bool]] | None = None

    def load(self, rows: list[AlertRow]) -> None:
        self.fired.update((r.scope, r.name, r.period, r.mark) for r in rows)

    def check(
        self,
        scope: str,
        name: str,
        team: str,
        period: Period,
        spent: int,
        budget: int,
        thresholds: tuple[int, ...],
        now: float,
    ) -> None:
        """Fire every threshold ``spent`` has reached that has not fired this period.

        Reached, not just crossed: a threshold passed while the server was down (or
        whose record was lost in a crash) still fires, once.
        """
        if budget <= 0:
            return  # a zero budget admits nothing priced; only its refusals alert
        for pct in thresholds:
            if spent * 100 >= budget * pct:  # exact integers, no float percentages
                self.fire(scope, name, team, period, str(pct), spent, budget, now)

    def fire(
        self,
        scope: str,
        name: str,
        team: str,
        period: Period,
        mark: str,
        spent: int,
        budget: int,
        now: float,
    ) -> None:
        """Fire once per (scope, name, period, mark); later calls do nothing."""
        key = (scope, name, period.id, mark)
        if key in self.fired:
            return
        self.fired.add(key)
        alert = Alert(
            scope, name, team, period, mark, spent, budget, now, self.calendar.reset_text(period)
        )
        self.unsaved.append(alert.row())
        log.warning("budget alert: %s", alert.text)
        if not self.webhook_url:
            return
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.failed += 1
            log.error("budget alert webhook queue is full; not posting: %s", alert.text)

    def prune(self, keep: set[str]) -> None:
        """Forget fired alerts of periods not in ``keep`` (period ids)."""
        self.fired = {f for f in self.fired if f[2] in keep}

    # -- delivery ------------------------------------------------------------------

    async def deliver_forever(self) -> None:
        """Post queued alerts one by one, in order (a background task)."""
        while True:
            alert = await self.queue.get()
            try:
                if self.claim is None or await self.claim(alert):
                    await self._post(alert, self.cfg.retries)
            except Exception:  # never let one bad alert stop the deliveries
                self.failed += 1
                log.exception("budget alert webhook failed unexpectedly")
            finally:
                self.queue.task_done()

    async def drain(self, within: float) -> None:
        """At shutdown: try once each to post what is queued, within ``within`` seconds."""
        if self.queue.empty():
            await self.close()
            return
        try:
            async with asyncio.timeout(within):
                while not self.queue.empty():
                    await self._post(self.queue.get_nowait(), retries=0)
        except TimeoutError:
            pass
        left = self.queue.qsize()
        if left:
            log.error("shutting down with %d budget alert webhook(s) not posted", left)
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, alert: Alert, retries: int) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout)
            )
        body = alert.payload()
        delay = self.backoff
        for attempt in range(retries + 1):
            wait: float | None = None
            try:
                async with self._session.post(self.webhook_url, json=body) as resp:
                    if resp.status < 300:
                        self.delivered += 1
                        return
                    problem = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status not in (408, 429):
                        log.error("budget alert webhook refused the alert (%s); dropped", problem)
                        self.failed += 1
                        return
                    wait = retry_after_seconds(resp.headers.get("Retry-After"), _now())
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt == retries:
                break
            pause = min(self.max_backoff, wait if wait is not None else delay)
            log.warning(
                "budget alert webhook failed (%s); retry %d of %d in %.1f s",
                problem,
                attempt + 1,
                retries,
                pause,
            )
            await asyncio.sleep(pause)
            delay *= 2
        self.failed += 1
        log.error("budget alert webhook failed %d time(s); dropped: %s", retries + 1, alert.text)


def _now() -> float:
    return datetime.now(UTC).timestamp()
