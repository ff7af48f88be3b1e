"""Both backends behind the same protocols: keys, teams, ledger, reports, rollups,
alerts, counters, audit chain, cache. PostgreSQL tests use a fresh database each on
$AIGW_TEST_POSTGRES (skipped, saying why, when it is not reachable)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from aigw import config as config_mod
from aigw.audit import ChainCheck, admin_event
from aigw.cache.entry import Entry
from aigw.config.ledger import LedgerConfig
from aigw.errors import AigwError, ConfigError, StoreError
from aigw.model import (
    NO_LIMITS,
    AlertRow,
    AuditEvent,
    KeyNotFound,
    LedgerRecord,
    LedgerRow,
    Limits,
    TeamNotFound,
    hash_key,
)
from aigw.retention import Pruner, SQLitePruner, prune_once
from aigw.store.base import Store
from aigw.store.open import open_store
from aigw.store.postgres import PostgresStore, open_postgres
from aigw.store.postgres.ledger import KEEP_BATCH_IDS
from aigw.store.sqlite import SQLiteStore
from aigw.store.sqlite.rollups import DAY, HOUR
from tests.pgserver import fresh_database
from tests.test_rollups import T0, random_bound, random_row, random_ts

BACKENDS = ("sqlite", "postgres")


def _config(url: str) -> config_mod.Config:
    cfg = config_mod.Config()
    cfg.store.url = url
    return cfg


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s = await open_store(_config(""), tmp_path / "state.db")
        yield s
        await s.close()
        return
    async with fresh_database() as url:
        s = await open_store(_config(url), tmp_path / "state.db")
        yield s
        await s.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


def _row(request_id: str, cost: int | None = 10, ts: float | None = None) -> LedgerRow:
    return LedgerRow(
        ts=time.time() if ts is None else ts,
        request_id=request_id,
        key_id="key_x",
        team="t",
        app=None,
        endpoint="chat",
        model="m",
        provider="p",
        upstream_model="m",
        status=200,
        stream=True,
        prompt_tokens=1,
        completion_tokens=2,
        cached_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        usage_estimated=False,
        cost_nusd=cost,
        latency_ms=3,
        error=None,
    )


def _proxy_event(request_id: str) -> AuditEvent:
    return AuditEvent(ts=time.time(), kind="proxy", request_id=request_id, status=200)


async def _verify(store: Store) -> tuple[bool, int, str | None]:
    head = await store.audit.head()
    check = ChainCheck(None)
    async for event in store.audit.chain():
        if not check.feed(event):
            break
    verdict = check.result(head)
    return verdict.ok, verdict.checked, check.problem


async def test_keys_teams_ledger_alerts_counters(store: Store) -> None:
    keys, teams = store.keys, store.teams
    before = await keys.generation()
    key, rec = await keys.create(team="t", app="web", limits=Limits(rpm=3, models=("gpt-*",)))
    assert await keys.generation() > before
    assert await keys.find_by_hash(hash_key(key)) == rec
    assert await keys.get(rec.id) == rec
    assert await keys.find_by_hash(hash_key(key + "x")) is None
    with pytest.raises(KeyNotFound):
        await keys.get("key_nope")
    assert (await keys.set_limits(rec.id, Limits(tpm=5))).limits == Limits(tpm=5)
    new_key, new, old = await keys.rotate(rec.id, grace=60)
    assert old.replaced_by == new.id and new.limits == Limits(tpm=5) and new_key != key
    assert (await keys.revoke(new.id)).state(time.time()) == "revoked"
    assert [k.id for k in await keys.list_all()] == [rec.id, new.id]
    _, admin = await keys.create(team="ignored", admin=True)
    assert admin.admin and admin.team == "(admin)"
    with pytest.raises(AigwError, match="takes no limits"):
        await keys.set_limits(admin.id, Limits(rpm=1))

    await teams.create("t", Limits(budget_nusd=10**12))
    with pytest.raises(AigwError, match="already exists"):
        await teams.create("t")
    updated = await teams.update("t", Limits(tpm=9), body_retention=3600.0)
    assert updated.limits == Limits(tpm=9) and updated.body_retention == 3600.0
    assert await teams.find("nope") is None
    with pytest.raises(TeamNotFound):
        await teams.update("nope", NO_LIMITS)
    assert [t.name for t in await teams.list_all()] == ["t"]
    assert await teams.key_counts(time.time()) == {"t": 1}
    await teams.remove("t")
    assert await teams.list_all() == []

    await store.ledger.append_many([_row("r1"), _row("r2", None), _proxy_event("r1")])
    (got,) = await store.reports.by_request_id("r1")
    assert got == _row("r1", ts=got.ts) and got.stream is True
    (total,) = await store.reports.summarize(by="team", since=None, until=None)
    assert (total.requests, total.cost_nusd, total.unpriced) == (2, 10, 1)
    assert await store.reports.spend_of("team", "t", 0, time.time() + 1) == (10, 1)
    assert await store.reports.unpriced_models(None) == [("p", "m", 1)]

    state = store.limit_state
    now = time.time()
    await state.save_counters([("b", now + 60, 1.0), ("c", now + 1, 2.0)], [])
    await state.save_counters([("b", now + 61, 1.5)], ["c"])
    assert await state.load_counters(now) == {"b": (now + 61, 1.5)}
    alert = AlertRow("team", "t", "month:2026-11-01", "80", now, 8, 10)
    await state.save_alerts([alert, alert])
    await state.save_alerts([alert])
    assert await state.load_alerts(["month:2026-11-01", "day:x"]) == [alert]
    assert await store.reports.alert_history("team", "t", "month:2026-11-01") == [alert]
    assert [s.cost_nusd for s in await state.spend_between(0, now + 1)] == [10]

    ok, checked, problem = await _verify(store)
    # key create, update, rotate, revoke, admin create; team create, update, delete; a call
    assert ok and checked == 9, problem
    assert [e.action for e in await store.audit.query(limit=2)] == ["teams.delete", None]
    assert await store.audit.count() == 9


async def test_cache_table(store: Store) -> None:
    now = time.time()

    def entry(key: str, team: str, size: int, last_used: float) -> Entry:
        return Entry(
            key, team, "chat", "m", "p/m", "hub", b"x" * size, b"{}", 7, now, now + 60, last_used
        )

    cache = store.cache
    await cache.put_many([entry("a", "t1", 100, now), entry("b", "t2", 100, now + 1)], [])
    got = await cache.get("a")
    assert got is not None and got.body == b"x" * 100 and got.usage == b"{}"
    await cache.put_many([], [(now + 5, "a")])
    assert await cache.total_size() == 2 * (100 + 2 + 256)
    left, gone = await cache.evict(400)
    assert gone == ["b"] and left == 358
    assert await cache.clear(team="t1", model=None, now=now) == 1
    assert [c[1] for c in await cache.clears_since(0)] == ["t1"]
    assert await cache.last_clear() >= 1
    await cache.put_many([entry("c", "t1", 1, now)], [])
    assert await cache.purge_expired(now + 61) == 1
    assert await cache.stats(now) == []


def us_ts(rnd: random.Random) -> float:
    """A row time to the microsecond: the SQLite ledger keeps no finer time (a row's id
    is its microsecond), so a row a few ns before an hour would count in the next hour
    there and in this one in PostgreSQL."""
    return round(random_ts(rnd) * 1_000_000) / 1_000_000


@pytest.mark.parametrize("seed", range(2))
async def test_reports_and_rollups_agree_across_backends(
    tmp_path: Path, pg_url: str, seed: int
) -> None:
    """The same rows in SQLite and in PostgreSQL: every report and spend query gives the
    same exact integers, and each equals the sums of the raw rows."""
    rnd = random.Random(seed)
    lite = await open_store(_config(""), tmp_path / "state.db")
    pg = await open_store(_config(pg_url), tmp_path / "state.db")
    assert isinstance(lite, SQLiteStore) and isinstance(pg, PostgresStore)
    try:
        for _ in range(20):
            batch = [random_row(rnd, us_ts(rnd)) for _ in range(rnd.randrange(1, 40))]
            await lite.ledger.append_many(batch)
            await pg.ledger.append_many(batch)
        for _ in range(15):
            a, b = random_bound(rnd), random_bound(rnd)
            if a is not None and b is not None and a > b:
                a, b = b, a
            for by in ("team", "app", "key", "model", "provider", "day"):
                want = await lite.reports.summarize(by=by, since=a, until=b)
                assert await pg.reports.summarize(by=by, since=a, until=b) == want, (by, a, b)
                raw = await pg.queries.summarize(by=by, since=a, until=b, raw=True)
                assert raw == want
            start = a if a is not None else T0 - DAY
            end = b if b is not None else T0 + 5 * DAY
            key = lambda s: (str(s.team), str(s.key_id))  # noqa: E731
            want_spend = sorted(await lite.limit_state.spend_between(start, end), key=key)
            assert sorted(await pg.limit_state.spend_between(start, end), key=key) == want_spend
            for s in want_spend:
                if s.team is not None:
                    assert await pg.reports.spend_of(
                        "team", s.team, start, end
                    ) == await lite.reports.spend_of("team", s.team, start, end)
        (total,) = await pg.reports.summarize(by="day", since=T0, until=T0 + HOUR * 24)
        assert total.requests and total.unpriced and total.cache_hits and total.saved_nusd
        # The rollups are really read: breaking one changes a whole-day report.
        await pg.db.execute("UPDATE rollup_day SET cost_nusd = cost_nusd + 1")
        (broken,) = await pg.reports.summarize(by="day", since=T0, until=T0 + DAY)
        (whole,) = await lite.reports.summarize(by="day", since=T0, until=T0 + DAY)
        assert broken.cost_nusd != whole.cost_nusd
    finally:
        await lite.close()
        await pg.close()


async def test_several_processes_keep_one_audit_chain(pg_url: str) -> None:
    """Four stores (four pools: four processes) append group commits and admin changes
    at once: one chain, every event in it once, and the ledger exact."""
    stores = [PostgresStore(await open_postgres(pg_url)) for _ in range(4)]
    try:

        async def work(i: int, s: PostgresStore) -> None:
            for j in range(15):
                rid = f"p{i}-{j}"
                batch: list[LedgerRecord] = [_row(rid), _proxy_event(rid)]
                await s.ledger.append_many(batch)
                if j % 5 == 0:
                    await s.keys.create(team=f"team{i}")

        await asyncio.gather(*(work(i, s) for i, s in enumerate(stores)))
        ok, checked, problem = await _verify(stores[0])
        assert ok, problem
        assert checked == 4 * 15 + 4 * 3
        (total,) = await stores[1].reports.summarize(by="team", since=None, until=None)
        assert (total.requests, total.cost_nusd) == (60, 600)
        ids = await stores[2].queries.request_ids()
        assert sorted(ids) == sorted(f"p{i}-{j}" for i in range(4) for j in range(15))
    finally:
        for s in stores:
            await s.close()


async def test_tampering_is_caught(pg_url: str) -> None:
    store = PostgresStore(await open_postgres(pg_url))
    try:
        await store.audit.append([admin_event("keys.create", f"k{i}") for i in range(5)])
        assert (await _verify(store))[0]
        await store.db.execute("UPDATE audit SET target = 'evil' WHERE seq = 3")
        ok, _, problem = await _verify(store)
        assert not ok and problem is not None and "3" in problem
    finally:
        await store.close()


async def test_a_replayed_batch_counts_once(pg_url: str) -> None:
    store = PostgresStore(await open_postgres(pg_url))
    try:
        batch: list[LedgerRecord] = [_row("a"), _row("b", 5), _proxy_event("a")]
        assert await store.queries.append_batch("batch-1", batch)
        assert not await store.queries.append_batch("batch-1", batch)
        (total,) = await store.reports.summarize(by="team", since=None, until=None)
        assert (total.requests, total.cost_nusd) == (2, 15)
        assert await store.audit.count() == 1
    finally:
        await store.close()


async def test_old_batch_ids_expire_and_a_late_replay_still_counts_once(pg_url: str) -> None:
    """``ledger_batches`` keeps a week of ids (the retention task's ``expire``); a
    batch replayed from the spool after its id expired is still skipped, by its rows."""
    store = PostgresStore(await open_postgres(pg_url))
    try:
        now = time.time()
        batch: list[LedgerRecord] = [_row("late"), _proxy_event("late")]
        assert await store.queries.append_batch("old", batch)
        assert await store.queries.append_batch("new", [_row("fresh")])
        await store.db.execute(
            "UPDATE ledger_batches SET applied_at = $1 WHERE id = 'old'", now - KEEP_BATCH_IDS - 1
        )
        assert await store.queries.expire(now) == 1
        ids = [r["id"] for r in await store.db.fetch("SELECT id FROM ledger_batches")]
        assert ids == ["new"]
        assert not await store.queries.append_batch("old", batch, replay=True)
        (total,) = await store.reports.summarize(by="team", since=None, until=None)
        assert total.requests == 2
        assert await store.audit.count() == 1
        assert await store.queries.expire(now) == 0
    finally:
        await store.close()


async def test_processes_starting_at_once_migrate_once(pg_url: str) -> None:
    dbs = await asyncio.gather(*(open_postgres(pg_url) for _ in range(5)))
    try:
        rows = await dbs[0].fetch("SELECT name FROM _migrations")
        assert [r["name"] for r in rows] == ["0001_schema"]
    finally:
        for db in dbs:
            await db.close()


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    (await open_postgres(pg_url)).pool.terminate()
    conn = await asyncpg.connect(pg_url)
    await conn.execute("INSERT INTO _migrations VALUES ('9999_future', 0)")
    await conn.close()
    with pytest.raises(StoreError, match="newer aigw"):
        await open_postgres(pg_url)


async def test_spool_keeps_rows_while_postgres_is_away(pg_url: str, tmp_path: Path) -> None:
    """Group commits that cannot reach the server go to the spool file (the call still
    ends) and replay once it is back, each exactly once."""
    spool = tmp_path / "spool.jsonl"
    store = PostgresStore(await open_postgres(pg_url), spool)
    assert store.spool is not None
    try:
        await store.ledger.append_many([_row("before")])
        healthy = store.db.pool
        # Every connection of the pool gone: what a stopped server looks like to it.
        store.db.pool = await asyncpg.create_pool(
            "postgresql://127.0.0.1:1/none", min_size=0, max_size=1
        )
        for i in range(3):
            await store.ledger.append_many([_row(f"away{i}", 7), _proxy_event(f"away{i}")])
        assert store.spool.spooled == 3 and spool.exists()
        readiness = await store.readiness()
        assert readiness["spooled"] == 3 and readiness["database"].startswith("degraded")
        assert await store.spool.replay() == 3  # still away: nothing replayed
        await store.db.pool.close()
        store.db.pool = healthy
        assert await store.spool.replay() == 0
        assert not spool.exists()
        assert (await store.readiness())["database"] == "ok"
        (total,) = await store.reports.summarize(by="team", since=None, until=None)
        assert (total.requests, total.cost_nusd) == (4, 31)
        assert (await _verify(store))[0]
    finally:
        await store.close()


async def test_a_spool_empties_while_commits_keep_coming(pg_url: str, tmp_path: Path) -> None:
    """Under load a replay catches up with the batches spooled meanwhile: the spool
    becomes empty and group commits go straight to PostgreSQL again."""
    spool = tmp_path / "spool.jsonl"
    store = PostgresStore(await open_postgres(pg_url), spool)
    assert store.spool is not None
    healthy = store.db.pool
    try:
        store.db.pool = await asyncpg.create_pool(
            "postgresql://127.0.0.1:1/none", min_size=0, max_size=1
        )
        for i in range(300):  # a long outage: more than a few replay transactions
            await store.ledger.append_many([_row(f"away{i}", 1)])
        assert store.spool.spooled == 300
        await store.db.pool.close()
        store.db.pool = healthy
        replaying = asyncio.create_task(store.spool.replay())
        during = 0
        while not replaying.done():  # commits keep coming while it replays
            await store.ledger.append_many([_row(f"during{during}", 1)])
            during += 1
        assert await replaying == 0 and store.spool.spooled == 0 and not spool.exists()
        await store.ledger.append_many([_row("after", 1)])
        assert store.spool.spooled == 0 and not spool.exists()  # straight to PostgreSQL
        assert store.spool.replayed >= 300 and during > 0
        (total,) = await store.reports.summarize(by="team", since=None, until=None)
        assert (total.requests, total.cost_nusd) == (300 + during + 1,) * 2
    finally:
        await store.close()


async def test_a_spool_left_by_a_crash_replays_at_the_next_start(
    pg_url: str, tmp_path: Path
) -> None:
    from aigw.store.postgres.spool import encode

    spool = tmp_path / "spool.jsonl"
    rows: list[LedgerRecord] = [_row("x", 3)]
    # The same batch twice (a crash between the commit and truncating the spool).
    spool.write_bytes(encode("b1", rows) + encode("b1", rows) + encode("b2", [_row("y", 4)]))
    store = PostgresStore(await open_postgres(pg_url), spool)
    try:
        assert store.spool is not None and store.spool.spooled == 3
        assert await store.spool.replay() == 0
        (total,) = await store.reports.summarize(by="team", since=None, until=None)
        assert (total.requests, total.cost_nusd) == (2, 7)
    finally:
        await store.close()


async def test_key_changes_are_announced(pg_url: str) -> None:
    a = PostgresStore(await open_postgres(pg_url))
    b = PostgresStore(await open_postgres(pg_url))
    heard = asyncio.Event()
    listener = asyncio.create_task(b.listen(heard.set))
    try:
        await asyncio.wait_for(heard.wait(), 5)  # the first call: "reload what you missed"
        heard.clear()
        await a.keys.create(team="t")
        await asyncio.wait_for(heard.wait(), 1)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await a.close()
        await b.close()


def test_a_password_in_the_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not contain a password"):
        config_mod.parse({"store": {"url": "postgresql://aigw:hunter2@db/aigw"}})
    with pytest.raises(ConfigError, match="postgresql://"):
        config_mod.parse({"store": {"url": "mysql://db/aigw"}})
    cfg = config_mod.parse({"store": {"url": "postgresql://aigw@db.internal/aigw"}})
    assert cfg.store.url == "postgresql://aigw@db.internal/aigw"


async def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the PostgreSQL store") as info:
        await open_store(_config("postgresql://aigw@127.0.0.1:1/aigw"), tmp_path / "s.db")
    assert "127.0.0.1:1" in str(info.value)


async def test_the_password_comes_from_the_environment(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust auth accepts any password: this checks it is passed, not that it is right.
    monkeypatch.setenv("AIGW_STORE_PASSWORD", "from-env")
    db = await open_postgres(pg_url)
    try:
        assert db.password == "from-env"
    finally:
        await db.close()


@pytest.mark.parametrize(("synchronous", "expected"), [("normal", "off"), ("full", "on")])
async def test_ledger_synchronous_sets_the_group_commits_wal_flush(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synchronous: str, expected: str
) -> None:
    """``[ledger] synchronous = "normal"``: group commits do not wait for the WAL flush
    (synchronous_commit off in their transaction only); "full": they do."""
    import aigw.store.postgres.ledger as pg_ledger

    seen: list[str] = []
    write = pg_ledger.write_batches

    async def asking(conn: asyncpg.Connection, *args: object, **kw: bool) -> list[bool]:
        seen.append(await conn.fetchval("SHOW synchronous_commit"))
        return await write(conn, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_ledger, "write_batches", asking)
    cfg = _config(pg_url)
    cfg.ledger.synchronous = synchronous
    store = await open_store(cfg, tmp_path / "state.db", serving=True)
    try:
        await store.ledger.append_many([_row("req_1")])
        assert seen == [expected]
        assert [r.request_id for r in await store.reports.by_request_id("req_1")] == ["req_1"]
        # SET LOCAL: the pooled connection is back to the server's setting afterwards.
        assert isinstance(store, PostgresStore)
        assert await store.db.pool.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await store.close()


async def test_retention_prunes_old_rows_in_batches_and_reports_stay_exact(store: Store) -> None:
    """``[ledger] keep_rows``/``keep_rollups`` on both backends: raw rows past keep_rows
    go (their totals stay in the rollups), rollups past keep_rollups go too."""
    assert isinstance(store, SQLiteStore | PostgresStore)
    pruner: Pruner = SQLitePruner(store.db) if isinstance(store, SQLiteStore) else store.queries
    now = time.time()
    day = 86400.0
    ancient = [_row(f"ancient{i}", ts=now - 10 * day - i) for i in range(5)]  # past both
    old = [_row(f"old{i}", ts=now - 3 * day - i) for i in range(7)]  # past keep_rows only
    await store.ledger.append_many([*ancient, *old, _row("new", ts=now)])

    async def totals() -> tuple[int, int]:
        rows = await store.reports.summarize(by="team", since=None, until=None)
        return sum(r.requests for r in rows), sum(r.cost_nusd for r in rows)

    assert await totals() == (13, 130)
    if isinstance(store, PostgresStore):  # several small batches
        assert await store.queries.prune_rows(now - 5 * day, batch=2) == 5
    cfg = LedgerConfig(keep_rows="1d", keep_rollups="5d")
    assert await prune_once(pruner, cfg, now) >= 7
    assert await store.reports.by_request_id("ancient0") == []
    assert await store.reports.by_request_id("old0") == []
    assert [r.request_id for r in await store.reports.by_request_id("new")] == ["new"]
    assert await totals() == (8, 80)  # the old rows live on in the rollups
    assert await prune_once(pruner, cfg, now) == 0  # nothing left to do


async def test_a_serving_postgres_store_runs_the_retention(pg_url: str, tmp_path: Path) -> None:
    store = await open_store(_config(pg_url), tmp_path / "state.db", serving=True)
    try:
        services = store.services()
        for _, coro in services:
            coro.close()
        assert "ledger-retention" in [name for name, _ in services]
    finally:
        await store.close()
