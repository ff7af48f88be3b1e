"""Aggregations shared by `aigw report` (and later the dashboard and /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.pricing import usd
from aigw.store import Database
from aigw.store import ledger as ledger_store
from aigw.store.ledger import GROUPS, ReportRow

BY = tuple(GROUPS)


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
        return t


async def build(
    db: Database, *, by: str, since: float | None, until: float | None = None
) -> Report:
    if by not in GROUPS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(BY)}")
    rows = await ledger_store.summarize(db, by=by, since=since, until=until)
    return Report(by, since, until, rows)


def row_dict(r: ReportRow, by: str) -> dict[str, Any]:
    """One group as scripts see it. ``cost_usd`` is exact to the nano-dollar."""
    return {
        "by": by,
        "name": r.name,
        "requests": r.requests,
        "errors": r.errors,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cost_usd": float(usd(r.cost_nusd)),
        "unpriced_requests": r.unpriced,
    }
