"""What the dashboard reads from the ledger beyond ``aigw report``'s totals: a time
series, latency percentiles, cache and refusal counts, and one team's top groups.

Totals the page shares with ``aigw report --json`` (requests, errors, tokens, cost per
team, model and provider) come from :mod:`aigw.report`, never from here, so the two
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.model import ReportRow
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import us_bound

ALL = "*"  # the percentiles of every team together


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of the time series (``start`` is a unix time)."""

    start: float
    requests: int
    errors: int
    tokens: int
    cost_nusd: int


@dataclass(frozen=True, slots=True)
class TeamExtras:
    """Per team: answered-call latency percentiles (ms), cache use and limit refusals."""

    p50_ms: int | None
    p95_ms: int | None
    cache_lookups: int  # calls the cache looked at (hit, miss or bypass)
    cache_hits: int
    saved_nusd: int
    refused: int  # refused by the limits engine (429 before any upstream attempt)


def _where(since: float, until: float, team: str | None) -> tuple[str, list[Any]]:
    where = "id >= ? AND id < ?"  # the row id is its time in microseconds
    params: list[Any] = [us_bound(since), us_bound(until)]
    if team is not None:
        where += " AND COALESCE(team, '-') = ?"
        params.append(team)
    return where, params


async def series(
    db: Database, since: float, until: float, bucket: float, team: str | None
) -> list[Point]:
    """Calls per bucket of ``bucket`` seconds from ``since``; empty buckets are left out."""
    where, params = _where(since, until, team)
    rows = await db.fetchall(
        f"""SELECT CAST((ts - ?) / ? AS INTEGER) AS b, COUNT(*) AS n,
                   SUM(status >= 400) AS errors,
                   SUM(prompt_tokens + completion_tokens) AS tokens,
                   SUM(COALESCE(cost_nusd, 0)) AS cost
            FROM ledger WHERE {where} GROUP BY b ORDER BY b""",
        [since, bucket, *params],
    )
    return [
        Point(since + r["b"] * bucket, r["n"], r["errors"], r["tokens"], r["cost"]) for r in rows
    ]


async def team_extras(db: Database, since: float, until: float) -> dict[str, TeamExtras]:
    """:class:`TeamExtras` per team name ('-' for calls of no team), and of all teams
    together under :data:`ALL`. Percentiles are nearest-rank over answered calls."""
    where, params = _where(since, until, None)
    out: dict[str, TeamExtras] = {}
    for part in ("COALESCE(team, '-')", f"'{ALL}'"):
        pct = await db.fetchall(
            f"""WITH r AS (
                    SELECT {part} AS grp, latency_ms,
                           ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY latency_ms) AS n,
                           COUNT(*) OVER (PARTITION BY {part}) AS total
                    FROM ledger WHERE {where} AND status < 400)
                SELECT grp, MIN(CASE WHEN n >= 0.5 * total THEN latency_ms END) AS p50,
                            MIN(CASE WHEN n >= 0.95 * total THEN latency_ms END) AS p95
                FROM r GROUP BY grp""",
            params,
        )
        percentiles = {r["grp"]: (r["p50"], r["p95"]) for r in pct}
        counts = await db.fetchall(
            # Aliased 'grp': GROUP BY 'team' would name the table's column, not the alias.
            f"""SELECT {part} AS grp, SUM(cache IS NOT NULL) AS lookups,
                       SUM(cache = 'hit') AS hits, SUM(saved_nusd) AS saved,
                       SUM(status = 429 AND attempts = 0) AS refused
                FROM ledger WHERE {where} GROUP BY grp""",
            params,
        )
        for r in counts:
            p50, p95 = percentiles.get(r["grp"], (None, None))
            out[r["grp"]] = TeamExtras(
                p50, p95, r["lookups"] or 0, r["hits"] or 0, r["saved"] or 0, r["refused"] or 0
            )
    return out


_GROUPS = {"model": "model", "provider": "provider"}  # names ids in ledger_rows


async def team_groups(
    db: Database, by: str, team: str, since: float, until: float, limit: int = 10
) -> list[ReportRow]:
    """One team's totals per model or provider, as ``aigw report`` counts them."""
    # On ledger_rows by names id: the team's id (and NULL for '-'), each group's name
    # looked up once; groups that show alike ('-' for none) merged.
    rows = await db.fetchall(
        f"""SELECT COALESCE((SELECT name FROM names WHERE id = g.k), '-') AS name,
                   SUM(n) AS requests, SUM(errors) AS errors,
                   SUM(prompt_tokens) AS prompt_tokens,
                   SUM(completion_tokens) AS completion_tokens,
                   SUM(cost) AS cost, SUM(unpriced) AS unpriced
            FROM (SELECT {_GROUPS[by]} AS k, COUNT(*) AS n, SUM(status >= 400) AS errors,
                         SUM(prompt_tokens) AS prompt_tokens,
                         SUM(completion_tokens) AS completion_tokens,
                         SUM(COALESCE(cost_nusd, 0)) AS cost,
                         SUM(cost_nusd IS NULL) AS unpriced
                  FROM ledger_rows
                  WHERE id >= ? AND id < ?
                    AND (team IN (SELECT id FROM names WHERE name = ?)
                         OR (? = '-' AND team IS NULL))
                  GROUP BY k) g
            GROUP BY name ORDER BY cost DESC, requests DESC, name LIMIT ?""",
        [us_bound(since), us_bound(until), team, team, limit],
    )
    return [
        ReportRow(
            r["name"],
            r["requests"],
            r["errors"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["cost"],
            r["unpriced"],
        )
        for r in rows
    ]
