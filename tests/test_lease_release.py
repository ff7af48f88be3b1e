"""A call that ends at any stage after admission gives back its in-flight slots and
budget reservations: the lease is settled or released on every path, with no
finaliser as a safety net."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aigw.app import create_app
from aigw.config import Config, ModelConfig, ProviderConfig, QuotaConfig
from aigw.gateway import GATEWAY
from aigw.limits.base import Demand, Lease, Limiter
from aigw.limits.engine import LocalLease, LocalLimiter
from aigw.model import KeyRecord, Limits, TeamRecord
from aigw.pipeline import forward
from aigw.server import Server
from aigw.store.open import open_store
from tests.fakes.base import Fail, Hang, Reply
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]
LIMITS = Limits(max_parallel=5, budget_nusd=10**12)


class Running:
    """A gateway whose limits engine keeps every lease it handed out."""

    def __init__(self, server: Server, key: str, key_id: str) -> None:
        self.server = server
        self.url = server.url
        self.key = key
        self.key_id = key_id
        self.limiter = server.app[GATEWAY].limiter
        self.leases: list[LocalLease] = []
        admit = self.limiter.admit

        async def keep(key: KeyRecord, team: TeamRecord | None, demand: Demand) -> LocalLease:
            lease = await admit(key, team, demand)
            assert lease.parallel and lease.reserved  # it did take something
            self.leases.append(lease)
            return lease

        self.limiter.admit = keep  # type: ignore[method-assign]

    async def post(self, http: aiohttp.ClientSession, **body: Any) -> aiohttp.ClientResponse:
        return await http.post(
            self.url + "/v1/chat/completions",
            json={"model": "fast", "messages": HI, **body},
            headers={"Authorization": f"Bearer {self.key}"},
        )

    def assert_nothing_held(self) -> None:
        lim = self.limiter
        assert self.leases and all(lease.done for lease in self.leases)
        assert lim.keys[self.key_id].inflight == 0
        assert lim.team_scopes["t"].inflight == 0
        assert lim.spend_of("key", self.key_id).reserved == 0
        assert lim.spend_of("team", "t").reserved == 0


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(tmp_path: Path, fake_openai: FakeOpenAI, store_url: str) -> AsyncIterator[Start]:
    servers: list[Server] = []

    async def go(
        quota_rpm: int | None = None, drain_seconds: float = 30, cancel: bool = False
    ) -> Running:
        cfg = Config()
        cfg.store.url = store_url
        cfg.routing.max_attempts = 1  # one scripted answer per call
        cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
        cfg.models["fast"] = ModelConfig("fast", "openai", "gpt-4o-mini")
        cfg.server.drain_seconds = drain_seconds
        if quota_rpm is not None:
            cfg.quotas["openai"] = QuotaConfig("openai", rpm=quota_rpm)
            cfg.limits.queue_max_wait = 0.05
        app = create_app(cfg, tmp_path / "state.db")
        server = Server(app, shutdown_timeout=0.5, handler_cancellation=cancel)
        await server.setup()
        await server.listen("127.0.0.1", 0)
        servers.append(server)
        store = app[GATEWAY].store
        await store.teams.create("t", LIMITS)
        key, rec = await store.keys.create(team="t", limits=LIMITS)
        return Running(server, key, rec.id)

    yield go
    for server in servers:
        await server.close()


async def _until(check: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling server-side state
            await asyncio.sleep(0.01)


async def test_success_and_upstream_error(start: Start, fake_openai: FakeOpenAI) -> None:
    gw = await start()
    fake_openai.then(Reply(), Fail(400), Fail(503))
    async with aiohttp.ClientSession() as http:
        assert (await gw.post(http)).status == 200
        assert (await gw.post(http)).status == 400
        assert (await gw.post(http)).status >= 500
    gw.assert_nothing_held()


async def test_refused_after_admission_by_the_provider_quota(start: Start) -> None:
    gw = await start(quota_rpm=1)
    async with aiohttp.ClientSession() as http:
        statuses = [(await gw.post(http)).status for _ in range(2)]
    assert statuses == [200, 429]
    assert len(gw.leases) == 2
    gw.assert_nothing_held()


async def test_an_internal_error_after_admission(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start()

    async def broken(*args: object) -> web.Response:
        raise RuntimeError("a bug")

    monkeypatch.setattr(forward.Forward, "finish_json", broken)
    async with aiohttp.ClientSession() as http:
        assert (await gw.post(http)).status == 500
    gw.assert_nothing_held()


async def test_the_client_goes_away_mid_stream(start: Start, fake_openai: FakeOpenAI) -> None:
    gw = await start()
    fake_openai.then(Reply(text="word " * 50, chunk_delay=0.02))
    async with aiohttp.ClientSession() as http:
        resp = await gw.post(http, stream=True)
        await resp.content.readany()
        resp.close()  # hang up mid-stream
    await _until(lambda: bool(gw.leases) and gw.leases[0].done)
    gw.assert_nothing_held()


async def test_cut_at_shutdown(start: Start, fake_openai: FakeOpenAI) -> None:
    gw = await start(drain_seconds=0.1)
    fake_openai.then(Hang())
    async with aiohttp.ClientSession() as http:
        call = asyncio.ensure_future(gw.post(http))
        await _until(lambda: bool(fake_openai.requests))
        assert gw.limiter.keys[gw.key_id].inflight == 1
        assert await gw.server.drain(gw.server.app[GATEWAY].drain, 0.1) == 1
        assert (await call).status == 503
    gw.assert_nothing_held()


async def test_cancelled_when_the_client_hangs_up(start: Start, fake_openai: FakeOpenAI) -> None:
    """With aiohttp's handler_cancellation, a client that hangs up cancels the handler
    outside any drain: nothing records the call, and the lease is still given back."""
    gw = await start(cancel=True)
    fake_openai.then(Hang())
    async with aiohttp.ClientSession() as http:
        call = asyncio.ensure_future(gw.post(http))
        await _until(lambda: bool(fake_openai.requests))
        assert gw.limiter.keys[gw.key_id].inflight == 1
        call.cancel()  # closes the connection
        await asyncio.gather(call, return_exceptions=True)
        await _until(lambda: gw.leases[0].done)
    gw.assert_nothing_held()


async def test_the_in_process_engine_satisfies_the_protocols(
    tmp_path: Path, store_url: str
) -> None:
    cfg = Config()
    cfg.store.url = store_url
    store = await open_store(cfg, tmp_path / "s.db")
    try:
        limiter: Limiter = LocalLimiter(store.limit_state, cfg)
        _, key = await store.keys.create(team="t", limits=Limits(max_parallel=1))
        demand = Demand("m", "p", "openai", "m", None, 10, 10, 5, 0.0)
        lease: Lease = await limiter.admit(key, None, demand)
        assert isinstance(limiter, LocalLimiter) and limiter.keys[key.id].inflight == 1
        await lease.release()
        await lease.settle(None, None)  # after a release: no effect
        assert limiter.keys[key.id].inflight == 0
        assert isinstance(lease, LocalLease) and lease.done
    finally:
        await store.close()
