"""Rollups: reports and budget spend read from them equal sums of the raw rows, exactly."""

from __future__ import annotations

import itertools
import json
import math
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, fields
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigw.model import LedgerRow, ReportRow, SpendRow
from aigw.store import open_database
from aigw.store.postgres import PgDatabase, open_postgres
from aigw.store.postgres.ledger import PgLedger
from aigw.store.sqlite import db as db_mod
from aigw.store.sqlite import ledger, limits
from aigw.store.sqlite.migrations import MIGRATIONS
from aigw.store.sqlite.rollups import DAY, HOUR, segments
from tests import statedb

T0 = 1_764_547_200  # 2025-12-01 00:00 UTC, a day boundary


def random_row(rnd: random.Random, ts: float) -> LedgerRow:
    team = rnd.choice(["a", "b", "c", None])
    status = rnd.choice([200, 200, 200, 200, 429, 500, 502])
    cost = rnd.choice([None, 0, rnd.randrange(1, 10**12), rnd.randrange(1, 10**6)])
    cache = rnd.choice([None, None, "hit", "miss", "bypass"])
    return LedgerRow(
        ts=ts,
        request_id=f"r{rnd.randrange(10**9)}",
        key_id=None if team is None else f"key_{team}{rnd.randrange(3)}",
        team=team,
        app=rnd.choice([None, "web", "batch"]),
        endpoint="chat.completions",
        model=rnd.choice(["gpt-x", "claude-y", "gem-z", None]),
        provider=rnd.choice(["openai", "anthropic", None]),
        upstream_model="m",
        status=status,
        stream=rnd.random() < 0.5,
        prompt_tokens=rnd.randrange(0, 5000),
        completion_tokens=rnd.randrange(0, 5000),
        cached_tokens=rnd.randrange(0, 100),
        cache_write_tokens=rnd.randrange(0, 100),
        reasoning_tokens=rnd.randrange(0, 100),
        usage_estimated=False,
        cost_nusd=0 if cache == "hit" else cost,
        latency_ms=rnd.choice([0, 100, 101, 250, 999, 30000, 30001, rnd.randrange(0, 60000)]),
        error=None,
        cache=cache,
        saved_nusd=rnd.randrange(1, 10**9) if cache == "hit" else 0,
    )


def insert_old_rows(conn: sqlite3.Connection, rows: list[LedgerRow]) -> None:
    """Rows as aigw wrote them before 0011_ledger_compact: every column in the table."""
    names = [f.name for f in fields(LedgerRow)]
    conn.executemany(
        f"INSERT INTO ledger ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        [astuple(r) for r in rows],
    )


def random_ts(rnd: random.Random) -> float:
    """Times over three days, a fair share exactly on hour and day boundaries."""
    pick = rnd.random()
    if pick < 0.15:
        return float(T0 + rnd.randrange(0, 4) * DAY)
    if pick < 0.3:
        return float(T0 + rnd.randrange(0, 72) * HOUR)
    if pick < 0.4:  # just below a boundary
        return math.nextafter(float(T0 + rnd.randrange(1, 72) * HOUR), 0)
    return T0 + rnd.random() * 3 * DAY


def random_bound(rnd: random.Random) -> float | None:
    pick = rnd.random()
    if pick < 0.15:
        return None
    if pick < 0.5:
        return random_ts(rnd)
    return T0 - DAY + rnd.random() * 5 * DAY


class SqliteLedger:
    """The reads that have a rollup path and a raw one, on SQLite (as :class:`PgLedger`
    has them on PostgreSQL)."""

    def __init__(self, db: db_mod.Database) -> None:
        self.db = db

    async def append_many(self, rows: Sequence[LedgerRow]) -> None:
        await ledger.append_many(self.db, rows)

    async def summarize(
        self, *, by: str, since: float | None, until: float | None, raw: bool = False
    ) -> list[ReportRow]:
        return await ledger.summarize(self.db, by=by, since=since, until=until, raw=raw)

    async def spend_between(self, start: float, end: float, *, raw: bool = False) -> list[SpendRow]:
        return await limits.spend_between(self.db, start, end, raw=raw)

    async def spend_of(self, scope: str, name: str, start: float, end: float) -> tuple[int, int]:
        return await limits.spend_of(self.db, scope, name, start, end)


@asynccontextmanager
async def both_paths(
    path: Path, store_url: str, *, fast_writes: bool
) -> AsyncIterator[tuple[SqliteLedger | PgLedger, db_mod.Database | PgDatabase]]:
    """(the ledger's two read paths, something to ``execute`` raw SQL on) of the test's
    backend."""
    if store_url:
        pg = await open_postgres(store_url)
        try:
            yield PgLedger(pg), pg
        finally:
            await pg.close()
        return
    db = await open_database(path, fast_writes=fast_writes)
    try:
        yield SqliteLedger(db), db
    finally:
        await db.close()


@pytest.mark.parametrize("seed", range(4))
async def test_rollups_equal_raw_rows_to_the_nano_dollar(
    tmp_path: Path, seed: int, store_url: str
) -> None:
    rnd = random.Random(seed)
    async with both_paths(tmp_path / "state.db", store_url, fast_writes=seed % 2 == 0) as (
        db,
        sql,
    ):
        for _ in range(30):  # batches of the group commit, in any time order
            batch = [random_row(rnd, random_ts(rnd)) for _ in range(rnd.randrange(1, 40))]
            await db.append_many(batch)
        for _ in range(25):
            a, b = random_bound(rnd), random_bound(rnd)
            if a is not None and b is not None and a > b:
                a, b = b, a
            for by in ("team", "app", "key", "model", "provider", "day"):
                fast = await db.summarize(by=by, since=a, until=b)
                slow = await db.summarize(by=by, since=a, until=b, raw=True)
                assert fast == slow, (by, a, b)
            start = a if a is not None else T0 - DAY
            end = b if b is not None else T0 + 5 * DAY
            fast_spend = await db.spend_between(start, end)
            slow_spend = await db.spend_between(start, end, raw=True)
            key = lambda s: (str(s.team), str(s.key_id))  # noqa: E731
            assert sorted(fast_spend, key=key) == sorted(slow_spend, key=key)
            for s in slow_spend:
                if s.team is not None:
                    team_cost = sum(x.cost_nusd for x in slow_spend if x.team == s.team)
                    team_unpriced = sum(x.unpriced for x in slow_spend if x.team == s.team)
                    got = await db.spend_of("team", s.team, start, end)
                    assert got == (team_cost, team_unpriced)
        # Something was actually compared: priced, unpriced and cached rows exist.
        (total,) = await db.summarize(by="day", since=T0, until=T0 + HOUR * 24)
        assert total.requests and total.unpriced and total.cache_hits and total.saved_nusd
        # And the rollups are really read: breaking one changes a whole-hour report.
        await sql.execute("UPDATE rollup_day SET cost_nusd = cost_nusd + 1")
        (broken,) = await db.summarize(by="day", since=T0, until=T0 + DAY)
        assert broken.cost_nusd != total.cost_nusd


@given(
    st.one_of(st.none(), st.floats(T0 - 3 * DAY, T0 + 3 * DAY)),
    st.one_of(st.none(), st.floats(T0 - 3 * DAY, T0 + 3 * DAY)),
)
def test_segments_cover_the_range_exactly_once(a: float | None, b: float | None) -> None:
    segs = segments(a, b)
    lo = -math.inf if a is None else a
    hi = math.inf if b is None else b
    if lo >= hi:
        assert segs == []
        return
    assert segs[0][1] == lo and segs[-1][2] == hi
    for (_, _, end), (_, start, _) in itertools.pairwise(segs):
        assert end == start
    for kind, start, end in segs:
        assert start < end
        if kind == "hour":
            assert all(math.isinf(x) or x % HOUR == 0 for x in (start, end))
        if kind == "day":
            assert all(math.isinf(x) or x % DAY == 0 for x in (start, end))
        if kind == "raw":
            assert end - start < HOUR or (start, end) == (lo, hi)


@pytest.mark.sqlite_only("SQLite's migration 0007 backfilling rollups of an older file")
async def test_an_older_file_is_backfilled_by_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    rnd = random.Random(7)
    rows = [random_row(rnd, random_ts(rnd)) for _ in range(300)]
    # A file as aigw wrote it before rollups: the migrations up to 0006 only.
    old = [m for m in MIGRATIONS if m[0] < "0007"]
    monkeypatch.setattr(db_mod, "MIGRATIONS", old)
    db = await open_database(path)
    await db.batch(lambda conn: insert_old_rows(conn, rows))
    await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone() == (300,)
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'rollup_hour'").fetchall()
    monkeypatch.setattr(db_mod, "MIGRATIONS", MIGRATIONS)
    db = await open_database(path)
    try:
        for a, b in [(None, None), (T0 + 0.5, T0 + 2 * DAY + 7), (T0 + HOUR, T0 + DAY)]:
            for by in ("team", "key", "day", "model"):
                fast = await ledger.summarize(db, by=by, since=a, until=b)
                assert fast == await ledger.summarize(db, by=by, since=a, until=b, raw=True)
        row = await db.fetchone("SELECT SUM(requests) FROM rollup_day")
        assert row is not None and row[0] == 300
    finally:
        await db.close()


def test_report_shows_cache_hits_and_savings(store_url: str) -> None:
    from typer.testing import CliRunner

    from aigw.cli import app

    def ok(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output + repr(result.exception)
        return str(result.output)

    statedb.init_home(store_url)
    rnd = random.Random(5)
    now = time.time()
    rows = []
    for i, cache in enumerate(["hit", "hit", "miss", "bypass", None, "hit", "miss", "miss"]):
        r = random_row(rnd, now - 60 * i)
        r.team, r.model, r.cache = ("a" if i < 4 else "b"), "m", cache
        r.status, r.cost_nusd = 200, (0 if cache == "hit" else 1000)
        r.saved_nusd = 2_500_000_000 if cache == "hit" else 0
        rows.append(r)

    statedb.with_home_store(lambda store: store.ledger.append_many(rows))
    by_team = {r["name"]: r for r in json.loads(ok("report", "--json"))}
    a, b = by_team["a"], by_team["b"]
    assert (a["cache_hits"], a["cache_misses"], a["cache_hit_rate"]) == (2, 1, 0.6667)
    assert a["saved_usd"] == "5.000000000" and a["saved_nusd"] == 5_000_000_000
    assert (b["cache_hits"], b["cache_misses"], b["saved_usd"]) == (1, 2, "2.500000000")
    table = ok("report", "--by", "model")
    assert "cache hits" in table and "3 (50.0%)" in table and "7.500000" in table
    assert "saved_usd" in ok("report", "--csv").splitlines()[0]
