"""A call's lease settles while its ledger row commits (two waits at once, not one after
the other), and the row is still committed before the answer is released.

The unit tests drive :class:`~aigw.pipeline.account.Accountant` over a
:class:`~aigw.store.writer.GroupWriter` whose ``write_many`` the test holds; the last
one runs real gateways on a private PostgreSQL with Redis counters through an outage:
rows answered while the database is away are spooled, replayed and counted once, and
the shared spend matches the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from aigw.config import Config, ProviderConfig
from aigw.errors import GatewayError, Wire
from aigw.model import AuditEvent, LedgerRecord, LedgerRow, Limits
from aigw.pipeline.account import Accountant
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.store.postgres import PostgresStore, open_postgres
from aigw.store.writer import GroupWriter
from aigw.usage import Usage
from tests.fakes.openai import FakeOpenAI
from tests.redis_kit import REDIS_URL, drop_prefix, new_prefix, shared_redis
from tests.serverproc import start_server
from tests.test_postgres_scaleout import PrivatePostgres, private_postgres  # noqa: F401

# A wait that only a bug makes long (a deadlock turns into a failure, not a hang).
BOUND = 30.0


class HeldLease:
    """A lease whose settle waits for ``until`` (when given) and is counted."""

    def __init__(self, until: asyncio.Event | None = None) -> None:
        self.until = until
        self.settled: list[tuple[Usage | None, int | None]] = []

    def headers(self) -> dict[str, str]:
        return {}

    def upstream_slot(
        self, provider: str, model: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def settle(self, usage: Usage | None, cost_nusd: int | None) -> None:
        if self.until is not None:
            await asyncio.wait_for(self.until.wait(), BOUND)
        self.settled.append((usage, cost_nusd))

    async def release(self) -> None:
        pass


@contextlib.asynccontextmanager
async def accountant(
    write_many: Callable[[list[LedgerRecord]], Awaitable[None]],
) -> AsyncIterator[tuple[Accountant, GroupWriter[LedgerRecord]]]:
    writer: GroupWriter[LedgerRecord] = GroupWriter(write_many, name="ledger")
    task = asyncio.create_task(writer.run())
    try:
        yield Accountant(writer, PriceBook({})), writer
    finally:
        writer.close()
        await asyncio.wait_for(task, BOUND)


def call(lease: HeldLease | None, request_id: str = "req-1") -> Context:
    ctx = Context(Wire.OPENAI, "chat.completions", model="m")
    ctx.request_id = request_id
    ctx.status = 200
    ctx.usage = Usage(prompt_tokens=3, completion_tokens=4)
    ctx.lease = lease
    return ctx


async def test_the_lease_settles_while_the_row_commits() -> None:
    in_commit = asyncio.Event()
    release = asyncio.Event()
    committed: list[LedgerRecord] = []

    async def write_many(rows: list[LedgerRecord]) -> None:
        in_commit.set()
        await asyncio.wait_for(release.wait(), BOUND)
        committed.extend(rows)

    # The settle can only finish once the commit has begun: settling first and then
    # committing (one wait after the other) would time out here.
    lease = HeldLease(until=in_commit)
    async with accountant(write_many) as (acc, _):
        task = asyncio.create_task(acc.record(call(lease)))
        await asyncio.wait_for(in_commit.wait(), BOUND)
        await asyncio.wait_for(until_true(lambda: bool(lease.settled)), BOUND)
        # Settled, but the row is not committed yet: the answer is still held back.
        assert not task.done()
        release.set()
        await asyncio.wait_for(task, BOUND)
    assert [type(r) for r in committed] == [LedgerRow, AuditEvent]
    assert lease.settled == [(Usage(prompt_tokens=3, completion_tokens=4), 0)]


async def test_record_waits_for_the_commit_even_when_the_settle_is_slower() -> None:
    settle_gate = asyncio.Event()
    committed: list[str] = []

    async def write_many(rows: list[LedgerRecord]) -> None:
        committed.extend(r.request_id for r in rows if isinstance(r, LedgerRow))
        settle_gate.set()  # the commit is done; only now may the settle end

    lease = HeldLease(until=settle_gate)
    async with accountant(write_many) as (acc, writer):
        await asyncio.wait_for(acc.record(call(lease)), BOUND)
        assert committed == ["req-1"] and writer.commits == 1
        assert lease.settled


async def test_a_failed_commit_is_a_503_and_the_lease_is_still_settled() -> None:
    async def write_many(rows: list[LedgerRecord]) -> None:
        raise OSError("disk full")

    lease = HeldLease()
    async with accountant(write_many) as (acc, _):
        with pytest.raises(GatewayError) as err:
            await acc.record(call(lease))
    assert err.value.status == 503 and err.value.code == "ledger_unavailable"
    assert len(lease.settled) == 1


async def test_a_closed_ledger_is_a_503_and_the_lease_is_still_settled() -> None:
    async def write_many(rows: list[LedgerRecord]) -> None:
        pass

    lease = HeldLease()
    async with accountant(write_many) as (acc, writer):
        writer.close()
        with pytest.raises(GatewayError) as err:
            await acc.record(call(lease))
    assert err.value.code == "ledger_unavailable"
    assert len(lease.settled) == 1


async def test_a_call_cancelled_while_settling_still_has_its_row_committed() -> None:
    never = asyncio.Event()
    committed: list[str] = []
    done = asyncio.Event()

    async def write_many(rows: list[LedgerRecord]) -> None:
        committed.extend(r.request_id for r in rows if isinstance(r, LedgerRow))
        done.set()

    async with accountant(write_many) as (acc, writer):
        task = asyncio.create_task(acc.record(call(HeldLease(until=never))))
        await asyncio.wait_for(done.wait(), BOUND)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The next call commits normally (the cancelled one left nothing behind).
        await asyncio.wait_for(acc.record(call(HeldLease(), "req-2")), BOUND)
    assert committed == ["req-1", "req-2"] and writer.commits == 2


async def until_true(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - a condition set by another task, no event for it
        await asyncio.sleep(0)


# -- end to end: PostgreSQL away, Redis counters on -----------------------------------


@pytest.mark.slow
async def test_postgres_outage_with_redis_counters_spools_every_answered_row(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    private_postgres: PrivatePostgres,  # noqa: F811
) -> None:
    redis = await shared_redis()
    prefix = new_prefix()
    pg = private_postgres
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.store.url = pg.url
    cfg.ledger.synchronous = "full"  # the server is stopped -m immediate (see the other test)
    cfg.counters.url = REDIS_URL
    cfg.counters.prefix = prefix
    server = await start_server(tmp_path, cfg, {"AIGW_OPENAI_API_KEY": "sk-test"})
    answered: list[str] = []
    try:
        store = PostgresStore(await open_postgres(pg.url))
        try:
            key, _ = await store.keys.create(
                team="t", limits=Limits(rpm=100000, budget_nusd=10**15)
            )
        finally:
            await store.close()
        async with aiohttp.ClientSession() as http:

            async def one() -> None:
                async with http.post(
                    server.url + "/v1/chat/completions",
                    json={
                        "model": "openai/gpt-4o-mini",
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    answered.append(resp.headers["x-request-id"])

            async def spooled() -> int:
                async with http.get(server.url + "/readyz") as resp:
                    return int((await resp.json())["spooled"])

            for _ in range(5):
                await one()
            await asyncio.to_thread(pg.stop)
            while await spooled() == 0:  # calls until some rows went to the spool
                await one()
            for _ in range(5):
                await one()
            await asyncio.to_thread(pg.start)
            t0 = time.monotonic()
            while await spooled():
                assert time.monotonic() - t0 < BOUND, "the spool did not replay"
                await asyncio.sleep(0.05)
            await one()
    finally:
        await server.stop()
    try:
        store = PostgresStore(await open_postgres(pg.url))
        try:
            ids = await store.queries.request_ids()
            spend = await store.queries.spend_between(0, time.time() + 86400)
        finally:
            await store.close()
        assert sorted(ids) == sorted(answered)
        # Every answered call was charged in Redis too (settled alongside its commit).
        days = await redis.hgetall(f"{prefix}spend:team:t")
        ledger_cost = sum(r.cost_nusd for r in spend if r.team == "t")
        assert ledger_cost > 0
        assert sum(int(v) for v in days.values()) == ledger_cost
    finally:
        await drop_prefix(redis, prefix)
        await redis.aclose()
