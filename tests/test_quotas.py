"""Provider quotas: calls queue by priority instead of failing upstream; low priority
keeps to its share; an upstream 429 pauses the model for its Retry-After."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from aigw.config import Config, ProviderConfig, QuotaConfig
from aigw.errors import GatewayError
from aigw.limits.gcra import Counters
from aigw.limits.quotas import Quotas
from aigw.model import Limits
from tests.conftest import StartGateway, until
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI
from tests.limitkit import HI, team


def quotas(rpm: int, burst: float, *, max_wait: float = 5.0, low_share: float = 0.5) -> Quotas:
    cfg = Config()
    cfg.providers["p"] = ProviderConfig("p", "openai", "http://127.0.0.1:9/v1")
    cfg.quotas["p"] = QuotaConfig("p", rpm=rpm)
    cfg.limits.burst = burst
    cfg.limits.queue_max_wait = max_wait
    cfg.limits.low_priority_share = low_share
    return Quotas(cfg, Counters(burst), time.time)


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    q = quotas(600, burst=1 / 600)  # one call every 0.1 s, no burst
    await q.acquire("p", "m", "normal", 0)  # uses the only slot
    order: list[str] = []

    async def call(name: str, priority: str) -> None:
        await q.acquire("p", "m", priority, 0)
        order.append(name)

    tasks = []
    for name, priority in [("low1", "low"), ("norm1", "normal"), ("high1", "high")]:
        tasks.append(asyncio.create_task(call(name, priority)))
        await asyncio.sleep(0.005)
    tasks.append(asyncio.create_task(call("high2", "high")))
    await asyncio.sleep(0.005)
    assert q.queued() == 4
    started = time.monotonic()
    await asyncio.gather(*tasks)
    assert order == ["high1", "high2", "norm1", "low1"]
    assert 0.3 < time.monotonic() - started < 1.0  # paced at the quota's rate


async def test_low_priority_uses_only_its_share() -> None:
    q = quotas(600, burst=10 / 600, low_share=0.5)  # a burst of 10
    for _ in range(5):
        await q.acquire("p", "m", "low", 0)
    low = asyncio.create_task(q.acquire("p", "m", "low", 0))
    await asyncio.sleep(0.01)
    assert not low.done()  # half the quota is kept for the others
    for _ in range(5):
        await asyncio.wait_for(q.acquire("p", "m", "high", 0), 0.01)  # no wait at all
    low.cancel()


async def test_too_long_a_wait_is_a_429_at_once() -> None:
    q = quotas(60, burst=1 / 60, max_wait=0.3)  # one a second
    await q.acquire("p", "m", "normal", 0)
    started = time.monotonic()
    with pytest.raises(GatewayError) as info:
        await q.acquire("p", "m", "normal", 0)
    assert time.monotonic() - started < 0.05  # no point waiting 0.3 s to fail
    err = info.value
    assert (err.status, err.code) == (429, "upstream_quota_exceeded")
    assert err.headers["Retry-After"] == "1"
    assert "quota at provider 'p'" in err.message


async def test_a_queue_wait_times_out_behind_others() -> None:
    q = quotas(600, burst=1 / 600, max_wait=0.15)  # 0.1 s apart
    await q.acquire("p", "m", "normal", 0)
    first = asyncio.create_task(q.acquire("p", "m", "high", 0))
    second = asyncio.create_task(q.acquire("p", "m", "high", 0))
    third = asyncio.create_task(q.acquire("p", "m", "normal", 0))
    results = await asyncio.gather(first, second, third, return_exceptions=True)
    assert not isinstance(results[0], Exception)
    assert isinstance(results[2], GatewayError) and results[2].status == 429
    assert q.queued() == 0


async def test_a_cancelled_waiter_lets_the_next_one_go() -> None:
    q = quotas(600, burst=1 / 600)
    await q.acquire("p", "m", "normal", 0)
    gone = asyncio.create_task(q.acquire("p", "m", "high", 0))
    await asyncio.sleep(0.01)
    nxt = asyncio.create_task(q.acquire("p", "m", "low", 0))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.wait_for(nxt, 0.5)
    assert q.queued() == 0


async def test_an_upstream_429_pauses_only_that_model() -> None:
    q = quotas(60_000, burst=1.0)
    q.feedback("p", "m", 429, "0.3")
    started = time.monotonic()
    await q.acquire("p", "other", "normal", 0)
    assert time.monotonic() - started < 0.05
    await q.acquire("p", "m", "normal", 0)
    assert time.monotonic() - started >= 0.28
    # A provider with no quota declared learns from its 429s too.
    q.feedback("elsewhere", "x", 429, None)
    started = time.monotonic()
    await q.acquire("elsewhere", "x", "normal", 0)
    assert 0.9 < time.monotonic() - started < 1.5  # the default pause: 1 s


async def test_tokens_quota_is_settled(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.quotas["openai/gpt-4o-mini"] = QuotaConfig("openai/gpt-4o-mini", tpm=1000)
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    async with gw.openai(key) as client:
        for _ in range(3):
            await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=HI, max_tokens=100
            )
    bucket = gw.gw.limiter.counters.buckets["quota:openai/gpt-4o-mini:tpm"]
    # Three calls of 18 real tokens each (less the refill since), not 3 x 100+.
    assert 40 < bucket.used(time.time()) <= 54


async def test_through_the_server_an_upstream_429_makes_the_next_call_wait(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.routing.max_attempts = 1  # the 429 reaches the client
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    fake_openai.then(Fail(429, "slow down", headers={"Retry-After": "1"}))
    async with gw.openai(key) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
        assert info.value.response.headers["Retry-After"] == "1"  # passed on
        started = time.monotonic()
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
        waited = time.monotonic() - started
    assert 0.9 < waited < 2.0  # held at the gateway, not sent to fail upstream
    assert len(fake_openai.requests) == 2


async def test_through_the_server_high_priority_teams_go_first(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    # One call a second: wide enough that the high-priority call is queued before the
    # first slot frees, however slow the machine.
    cfg.quotas["openai"] = QuotaConfig("openai", rpm=60)
    cfg.limits.burst = 1 / 60
    gw = await start_gateway(config=cfg)
    await team(gw, "batch", priority="low")
    await team(gw, "app", priority="normal")
    batch = gw.openai(await gw.key(team="batch"))
    app = gw.openai(await gw.key(team="app", limits=Limits(priority="high")))

    async def ask(client: openai.AsyncOpenAI, text: str) -> None:
        await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )

    try:
        await ask(batch, "warm-up")  # takes the slot
        tasks = [asyncio.create_task(ask(batch, f"batch{i}")) for i in range(3)]
        await until(lambda: gw.gw.limiter.quotas.queued() == 3, what="3 calls queued")
        tasks.append(asyncio.create_task(ask(app, "app")))  # the key's own priority wins
        await asyncio.gather(*tasks)
    finally:
        await batch.close()
        await app.close()
    seen = [r.body["messages"][0]["content"] for r in fake_openai.requests]
    assert seen == ["warm-up", "app", "batch0", "batch1", "batch2"]
