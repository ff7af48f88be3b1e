"""What is happening now, on PostgreSQL (`aigw top`): the twin of
:mod:`aigw.store.sqlite.live`'s queries, over every gateway's ledger rows."""

from __future__ import annotations

from aigw.store.postgres.db import PgDatabase
from aigw.store.sqlite.live import TeamActivity

# A refusal by the limits engine: 429 answered before any upstream attempt.
_REFUSED = "(status = 429 AND attempts = 0)"


async def team_activity(db: PgDatabase, since: float) -> list[TeamActivity]:
    """Per team (``-`` for calls with no team), the ledger rows since ``since``."""
    rows = await db.fetch(
        f"""
        SELECT COALESCE(team, '-') AS name, COUNT(*) AS n,
               COUNT(*) FILTER (WHERE status >= 400 AND NOT {_REFUSED}) AS errors,
               COUNT(*) FILTER (WHERE {_REFUSED}) AS refused,
               SUM(prompt_tokens + completion_tokens) AS tokens,
               SUM(COALESCE(cost_nusd, 0)) AS cost,
               SUM(latency_ms)::float8 / COUNT(*) AS latency
        FROM ledger WHERE ts >= $1 GROUP BY 1 ORDER BY 6 DESC, 2 DESC, 1
        """,
        float(since),
    )
    return [
        TeamActivity(
            r["name"],
            int(r["n"]),
            int(r["errors"]),
            int(r["refused"]),
            int(r["tokens"] or 0),
            int(r["cost"] or 0),
            r["latency"],
        )
        for r in rows
    ]


async def spend_since(db: PgDatabase, since: float) -> dict[str, int]:
    """Cost in nano-USD per team since ``since``."""
    rows = await db.fetch(
        "SELECT COALESCE(team, '-') AS name, SUM(COALESCE(cost_nusd, 0)) AS cost "
        "FROM ledger WHERE ts >= $1 GROUP BY 1",
        float(since),
    )
    return {r["name"]: int(r["cost"] or 0) for r in rows}
