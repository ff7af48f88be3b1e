"""Read-only queries for what is happening now (`aigw top`, `aigw doctor`).

They open the state file read-only (``mode=ro``): a viewer never migrates, locks or
writes the file a running server owns, and WAL lets it read while the server commits.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aigw.errors import StoreError
from aigw.store.sqlite.rollups import us_bound


@dataclass(slots=True)
class TeamActivity:
    """One team's calls since a moment: how many, how they went, what they cost."""

    team: str
    requests: int = 0
    errors: int = 0  # answered with an error (refusals by the limits not counted)
    refused: int = 0  # refused by a rate limit, budget or quota (429, no upstream attempt)
    tokens: int = 0
    cost_nusd: int = 0
    latency_ms_avg: float | None = None


def open_readonly(path: Path) -> sqlite3.Connection:
    """The state file, read-only; StoreError when it is missing or not a database."""
    if not path.exists():
        raise StoreError(f"{path}: no state database yet; run `aigw init` or `aigw serve`")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT 1 FROM ledger LIMIT 1")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the state database: {exc}") from exc
    return conn


# A refusal by the limits engine: 429 answered before any upstream attempt (attempts
# are flags >> 4 in ledger_rows, migration 0011_ledger_compact).
_REFUSED = "(status = 429 AND flags >> 4 = 0)"
# Rows since a time (the row id is its time in microseconds), summed per team id; the
# name is looked up once per team, and teams that show alike ('-' for none) merged.
_TEAM = "COALESCE((SELECT name FROM names WHERE id = g.team), '-')"


def team_activity(conn: sqlite3.Connection, since: float) -> list[TeamActivity]:
    """Per team (``-`` for calls with no team), the ledger rows since ``since``."""
    rows = conn.execute(
        f"""
        SELECT {_TEAM} AS name, SUM(n), SUM(errors), SUM(refused), SUM(tokens), SUM(cost),
               SUM(latency) * 1.0 / SUM(n)
        FROM (SELECT team, COUNT(*) AS n,
                     SUM(status >= 400 AND NOT {_REFUSED}) AS errors,
                     SUM({_REFUSED}) AS refused,
                     SUM(prompt_tokens + completion_tokens) AS tokens,
                     SUM(COALESCE(cost_nusd, 0)) AS cost,
                     SUM(latency_ms) AS latency
              FROM ledger_rows WHERE id >= ? GROUP BY team) g
        GROUP BY name ORDER BY 6 DESC, 2 DESC, 1
        """,
        (us_bound(since),),
    ).fetchall()
    return [
        TeamActivity(r[0], r[1], r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0, r[6]) for r in rows
    ]


def spend_since(conn: sqlite3.Connection, since: float) -> dict[str, int]:
    """Cost in nano-USD per team since ``since``."""
    rows = conn.execute(
        f"SELECT {_TEAM} AS name, SUM(cost) FROM (SELECT team, "
        "SUM(COALESCE(cost_nusd, 0)) AS cost FROM ledger_rows WHERE id >= ? GROUP BY team) g "
        "GROUP BY name",
        (us_bound(since),),
    ).fetchall()
    return {r[0]: r[1] or 0 for r in rows}


@dataclass(slots=True)
class StateCheck:
    """What `aigw doctor` learns of the state file."""

    integrity: str  # "ok", or what PRAGMA quick_check found
    migrations: int
    ledger_rows: int


def check_state(path: Path) -> StateCheck:
    """Integrity (``PRAGMA quick_check``) and a few counts; StoreError if unreadable."""
    conn = open_readonly(path)
    try:
        found = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        migrations = conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
        rows = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the state database: {exc}") from exc
    finally:
        conn.close()
    return StateCheck("ok" if found == ["ok"] else "; ".join(found[:5]), migrations, rows)
