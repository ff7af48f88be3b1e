"""The storage seams: each backend satisfies the protocols, GroupWriter, transaction
safety."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from aigw.config import Config
from aigw.model import NO_LIMITS, AlertRow, LedgerRow, Limits, hash_key
from aigw.store import Database, SQLiteStore, open_database
from aigw.store.base import KeyStore, LedgerQueries, LedgerSink, LimitState, Store, TeamStore
from aigw.store.open import open_store
from aigw.store.writer import GroupWriter
from tests.statedb import use_store


def _row(request_id: str, cost: int | None = 10) -> LedgerRow:
    return LedgerRow(
        ts=time.time(),
        request_id=request_id,
        key_id="key_x",
        team="t",
        app=None,
        endpoint="chat",
        model="m",
        provider="p",
        upstream_model="m",
        status=200,
        stream=False,
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


async def test_the_store_satisfies_the_protocols(tmp_path: Path, store_url: str) -> None:
    # mypy checks the structure (open_store returns a Store); this checks behaviour.
    store: Store = await open_store(use_store(Config(), store_url), tmp_path / "state.db")
    keys: KeyStore = store.keys
    teams: TeamStore = store.teams
    sink: LedgerSink = store.ledger
    queries: LedgerQueries = store.reports
    state: LimitState = store.limit_state
    try:
        before = await keys.generation()
        key, rec = await keys.create(team="t", limits=Limits(rpm=3))
        assert await keys.generation() > before
        assert await keys.find_by_hash(hash_key(key)) == rec
        assert await keys.find_by_hash(hash_key(key + "x")) is None
        assert (await keys.revoke(rec.id)).state(time.time()) == "revoked"
        assert await keys.find_by_hash(hash_key(key)) is not None  # any state
        await teams.create("t")
        assert (await teams.update("t", Limits(tpm=9))).limits == Limits(tpm=9)
        assert await teams.find("nope") is None
        assert [t.name for t in await teams.list_all()] == ["t"]
        assert (await teams.get("t")).limits != NO_LIMITS

        await sink.append_many([_row("r1"), _row("r2", None)])
        assert [r.request_id for r in await queries.by_request_id("r1")] == ["r1"]
        (total,) = await queries.summarize(by="team", since=None, until=None)
        assert (total.requests, total.cost_nusd, total.unpriced) == (2, 10, 1)
        assert await queries.spend_of("team", "t", 0, time.time() + 1) == (10, 1)

        now = time.time()
        await state.save_counters([("b", now + 60, 1.0)], [])
        assert await state.load_counters(now) == {"b": (now + 60, 1.0)}
        alert = AlertRow("team", "t", "month:2026-11-01", "80", now, 8, 10)
        await state.save_alerts([alert, alert])
        assert await state.load_alerts(["month:2026-11-01"]) == [alert]
        assert await queries.alert_history("team", "t", "month:2026-11-01") == [alert]
        assert [s.cost_nusd for s in await state.spend_between(0, now + 1)] == [10]
    finally:
        await store.close()


async def test_group_writer_batches_and_survives_a_cancelled_caller() -> None:
    batches: list[list[int]] = []
    gate, entered = asyncio.Event(), asyncio.Event()

    async def write_many(rows: list[int]) -> None:
        entered.set()
        await gate.wait()
        batches.append(rows)

    writer: GroupWriter[int] = GroupWriter(write_many, name="test")
    task = asyncio.create_task(writer.run())
    first = asyncio.create_task(writer.append(0))
    await entered.wait()  # the writer took row 0 and waits in write_many
    rest = [asyncio.create_task(writer.append(i)) for i in range(1, 5)]
    await asyncio.sleep(0)
    rest[0].cancel()  # a caller that goes away cancels only its own wait
    gate.set()
    await first
    await asyncio.gather(*rest[1:])
    writer.close()
    await task
    assert batches == [[0], [1, 2, 3, 4]]  # row 1 is still written
    assert (writer.commits, writer.rows) == (2, 5)
    with pytest.raises(RuntimeError, match="test is closed"):
        await writer.append(9)


async def test_group_writer_failure_reaches_every_caller_of_the_batch() -> None:
    async def write_many(rows: list[int]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    writer: GroupWriter[int] = GroupWriter(write_many, name="test")
    task = asyncio.create_task(writer.run())
    results = await asyncio.gather(*(writer.append(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    writer.close()
    await task
    assert writer.commits == 0


async def _count(db: Database, table: str) -> int:
    row = await db.fetchone(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


@pytest.mark.sqlite_only("SQLite's transactions on the connection its ledger writes share")
@pytest.mark.parametrize("fails", [False, True])
async def test_transaction_concurrent_with_ledger_appends(tmp_path: Path, fails: bool) -> None:
    """A ledger row acknowledged while a transaction runs is committed on its own:
    it neither joins the transaction nor disappears with its rollback."""
    db = await open_database(tmp_path / "state.db", fast_writes=True)
    store = SQLiteStore(db)
    writer: GroupWriter[LedgerRow] = GroupWriter(store.ledger.append_many, name="ledger")
    runner = asyncio.create_task(writer.run())
    try:
        await store.teams.create("taken")
        statements: list[tuple[str, tuple[object, ...]]] = [
            ("INSERT INTO limit_counters (bucket, tat, interval) VALUES (?, ?, 1)", (f"b{i}", i))
            for i in range(200)
        ]
        if fails:  # the last statement breaks a constraint: everything rolls back
            statements.append(
                ("INSERT INTO teams (name, created_at, updated_at) VALUES ('taken', 0, 0)", ())
            )

        async def appends() -> None:
            for i in range(40):
                await writer.append(_row(f"r{i}"))
                await asyncio.sleep(0)

        results = await asyncio.gather(
            db.transaction(statements), appends(), appends(), return_exceptions=True
        )
        if fails:
            assert isinstance(results[0], sqlite3.IntegrityError)
        assert results[1] is None and results[2] is None
        assert await _count(db, "ledger") == 80  # every acknowledged row is there
        assert await _count(db, "limit_counters") == (0 if fails else 200)
    finally:
        writer.close()
        await runner
        await store.close()
