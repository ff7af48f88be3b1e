"""The dashboard's ledger reads on PostgreSQL (the twin of
:mod:`aigw.store.sqlite.dashboard`)."""

from __future__ import annotations

from typing import Any

from aigw.model import ReportRow
from aigw.store.postgres.db import PgDatabase
from aigw.store.sqlite.dashboard import ALL, Point, TeamExtras

_GROUPS = {"model": "COALESCE(model, '-')", "provider": "COALESCE(provider, '-')"}


def _where(since: float, until: float, team: str | None, first: int = 1) -> tuple[str, list[Any]]:
    where = f"ts >= ${first} AND ts < ${first + 1}"
    params: list[Any] = [since, until]
    if team is not None:
        where += f" AND COALESCE(team, '-') = ${first + 2}"
        params.append(team)
    return where, params


class PgDashboard:
    """:class:`~aigw.store.base.DashboardQueries` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def series(
        self, since: float, until: float, bucket: float, team: str | None
    ) -> list[Point]:
        where, params = _where(since, until, team, first=3)
        rows = await self.db.fetch(
            f"""SELECT floor((ts - $1) / $2)::bigint AS b, COUNT(*) AS n,
                       COUNT(*) FILTER (WHERE status >= 400) AS errors,
                       SUM(prompt_tokens + completion_tokens) AS tokens,
                       SUM(COALESCE(cost_nusd, 0)) AS cost
                FROM ledger WHERE {where} GROUP BY b ORDER BY b""",
            float(since),
            float(bucket),
            *params,
        )
        return [
            Point(
                since + r["b"] * bucket,
                int(r["n"]),
                int(r["errors"]),
                int(r["tokens"]),
                int(r["cost"]),
            )
            for r in rows
        ]

    async def team_extras(self, since: float, until: float) -> dict[str, TeamExtras]:
        where, params = _where(since, until, None)
        out: dict[str, TeamExtras] = {}
        for part in ("COALESCE(team, '-')", f"'{ALL}'"):
            pct = await self.db.fetch(
                f"""WITH r AS (
                        SELECT {part} AS grp, latency_ms,
                               ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY latency_ms) AS n,
                               COUNT(*) OVER (PARTITION BY {part}) AS total
                        FROM ledger WHERE {where} AND status < 400)
                    SELECT grp, MIN(CASE WHEN n >= 0.5 * total THEN latency_ms END) AS p50,
                                MIN(CASE WHEN n >= 0.95 * total THEN latency_ms END) AS p95
                    FROM r GROUP BY grp""",
                *params,
            )
            percentiles = {r["grp"]: (r["p50"], r["p95"]) for r in pct}
            counts = await self.db.fetch(
                f"""SELECT {part} AS grp, COUNT(*) FILTER (WHERE cache IS NOT NULL) AS lookups,
                           COUNT(*) FILTER (WHERE cache = 'hit') AS hits,
                           SUM(saved_nusd) AS saved,
                           COUNT(*) FILTER (WHERE status = 429 AND attempts = 0) AS refused
                    FROM ledger WHERE {where} GROUP BY grp""",
                *params,
            )
            for r in counts:
                p50, p95 = percentiles.get(r["grp"], (None, None))
                out[r["grp"]] = TeamExtras(
                    None if p50 is None else int(p50),
                    None if p95 is None else int(p95),
                    int(r["lookups"]),
                    int(r["hits"]),
                    int(r["saved"] or 0),
                    int(r["refused"]),
                )
        return out

    async def team_groups(
        self, by: str, team: str, since: float, until: float, limit: int = 10
    ) -> list[ReportRow]:
        where, params = _where(since, until, team)
        rows = await self.db.fetch(
            f"""SELECT {_GROUPS[by]} AS name, COUNT(*) AS requests,
                       COUNT(*) FILTER (WHERE status >= 400) AS errors,
                       SUM(prompt_tokens) AS prompt_tokens,
                       SUM(completion_tokens) AS completion_tokens,
                       SUM(COALESCE(cost_nusd, 0)) AS cost,
                       COUNT(*) FILTER (WHERE cost_nusd IS NULL) AS unpriced
                FROM ledger WHERE {where}
                GROUP BY name ORDER BY cost DESC, requests DESC, name LIMIT ${len(params) + 1}""",
            *params,
            limit,
        )
        return [
            ReportRow(
                r["name"],
                int(r["requests"]),
                int(r["errors"]),
                int(r["prompt_tokens"]),
                int(r["completion_tokens"]),
                int(r["cost"]),
                int(r["unpriced"]),
            )
            for r in rows
        ]
