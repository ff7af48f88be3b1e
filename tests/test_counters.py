"""Redis counters ([counters] url): the limits of one gateway process counted in Redis.

Real Redis (tests/redis_kit.py), real gateway on a real socket, no mocks. The
multi-process tests are in tests/test_counters_scale.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw import doctor, paths
from aigw.app import LIMITER
from aigw.cli import app as cli_app
from aigw.config import Config, QuotaConfig
from aigw.errors import GatewayError
from aigw.limits.base import Demand
from aigw.limits.shared import RedisLimiter
from aigw.model import Limits, hash_key
from tests.conftest import RunningGateway, StartGateway, until
from tests.limitkit import HI, outcomes
from tests.redis_kit import (
    REDIS_URL,
    PrivateRedis,
    Upstream,
    drop_prefix,
    prefixed,
    shared_redis,
)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = await Upstream().start()
    yield up
    await up.close()


@pytest.fixture
async def http() -> AsyncIterator[openai.DefaultAsyncHttpxClient]:
    """One HTTP client for the test's SDK clients, closed at the end."""
    client = openai.DefaultAsyncHttpxClient()
    yield client
    await client.aclose()


@pytest.fixture
async def shared() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    async with prefixed() as pair:
        yield pair


def counters_config(url: str, prefix: str, upstream: Upstream, mode: str = "refuse") -> Config:
    cfg = Config()
    cfg.routing.max_attempts = 1
    cfg.counters.url = url
    cfg.counters.prefix = prefix
    cfg.counters.on_unavailable = mode
    return cfg


async def start(
    start_gateway: StartGateway, upstream: Upstream, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> RunningGateway:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "upstream-key")
    return await start_gateway(
        providers={"openai": ("openai", upstream.base_url)},
        models={"fast": ("openai", "gpt-4o-mini")},
        config=cfg,
    )


async def test_rpm_in_redis_admits_exactly_the_limit_with_the_local_headers(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    client, prefix = shared
    gw = await start(
        start_gateway,
        upstream,
        counters_config(REDIS_URL, prefix, upstream),
        monkeypatch,
    )
    key = await gw.key(team="t", limits=Limits(rpm=5, tpm=100_000))
    c = gw.openai(key, http_client=http)
    got = await outcomes(c, 12, model="fast")
    assert got.count("ok") == 5
    assert set(got) == {"ok", "rate_limit_exceeded"}
    # The counters are in Redis under the prefix, not in the process.
    assert await client.exists(f"{prefix}rpm:key:{_id(gw, key)}")
    with pytest.raises(openai.RateLimitError) as err:
        await c.chat.completions.create(model="fast", messages=HI)
    resp = err.value.response
    assert resp.headers["x-ratelimit-limit-requests"] == "5"
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(resp.headers["Retry-After"]) >= 1
    assert "Limit 5, Used 5, Requested 1" in err.value.message


async def test_budget_and_parallel_refusals_match_the_local_engine(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    _, prefix = shared
    upstream.delay = 0.3
    gw = await start(
        start_gateway,
        upstream,
        counters_config(REDIS_URL, prefix, upstream),
        monkeypatch,
    )
    key = await gw.key(team="t", limits=Limits(max_parallel=2))
    got = await outcomes(gw.openai(key, http_client=http), 6, model="fast")
    assert got.count("ok") == 2
    assert upstream.peak == 2
    # A budget of 5 calls' worst case at most: never more than that many answered.
    poor = await gw.key(team="u", limits=Limits(budget_nusd=30_000))
    got = await outcomes(gw.openai(poor, http_client=http), 10, model="fast", max_tokens=20)
    assert "budget_exceeded" in got
    assert 0 < got.count("ok") < 10


async def test_unreachable_redis_refuses_with_503_or_falls_back_to_local_limits(
    start_gateway: StartGateway,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    redis_ = PrivateRedis()
    await redis_.start()
    try:
        refuse = await start(
            start_gateway,
            upstream,
            counters_config(redis_.url, "r:", upstream, "refuse"),
            monkeypatch,
        )
        local = await start(
            start_gateway,
            upstream,
            counters_config(redis_.url, "l:", upstream, "local"),
            monkeypatch,
        )
        rkey = await refuse.key(team="t", limits=Limits(rpm=100))
        lkey = await local.key(team="t", limits=Limits(rpm=3))
        assert await outcomes(refuse.openai(rkey, http_client=http), 2, model="fast") == [
            "ok",
            "ok",
        ]
        await redis_.stop()
        with pytest.raises(openai.APIStatusError) as err:
            await refuse.openai(rkey, http_client=http).chat.completions.create(
                model="fast", messages=HI
            )
        assert err.value.status_code == 503
        assert err.value.code == "counters_unavailable"
        async with aiohttp.ClientSession() as web_:
            ready = await web_.get(refuse.url + "/readyz")
            assert ready.status == 503
            assert "unavailable" in (await ready.json())["checks"]["counters"]
        # Local: per-process limits, still exact in this process.
        got = await outcomes(local.openai(lkey, http_client=http), 6, model="fast")
        assert got.count("ok") == 3
        async with aiohttp.ClientSession() as web_:
            ready = await web_.get(local.url + "/readyz")
            assert ready.status == 200
            assert "local limits" in (await ready.json())["counters"]
        # Back: both return to Redis within a probe or two.
        await redis_.start()
        await until(
            lambda: _limiter(refuse).available and _limiter(local).available,
            what="the probes find Redis back",
        )
        assert await outcomes(refuse.openai(rkey, http_client=http), 1, model="fast") == ["ok"]
    finally:
        await redis_.stop()


async def test_leases_are_renewed_while_running_and_expire_after_a_crash(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two limiters on one Redis stand for two processes; one of them dies holding a slot."""
    _, prefix = shared
    cfg = counters_config(REDIS_URL, prefix, upstream)
    gw = await start(start_gateway, upstream, cfg, monkeypatch)
    secret = await gw.key(team="t", limits=Limits(max_parallel=1))
    key = await gw.gw.store.keys.find_by_hash(hash_key(secret))
    assert key is not None
    demand = Demand("fast", "openai", "openai", "gpt-4o-mini", None, 10, 20, 10, time.time())
    state = gw.gw.store.limit_state
    a, b = RedisLimiter(state, cfg), RedisLimiter(state, cfg)
    for limiter in (a, b):
        limiter.lease_seconds = 1.5  # renewed every 0.5 s: a busy loop may lag a second
        await limiter.start()
    runner = asyncio.create_task(a.run())
    try:
        await a.admit(key, None, demand)
        # Three lease lengths later the slot is still held: a renews it while it runs.
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            with pytest.raises(GatewayError) as err:
                await b.admit(key, None, demand)
            assert err.value.code == "rate_limit_exceeded"
            await asyncio.sleep(0.1)
        # a dies without giving the slot back: it comes back when the lease expires.
        runner.cancel()
        await asyncio.wait({runner})
        a.live.clear()
        deadline = time.monotonic() + 15
        while True:
            try:
                lease = await b.admit(key, None, demand)
                break
            except GatewayError:
                assert time.monotonic() < deadline, "the dead lease never expired"
                await asyncio.sleep(0.05)
        await lease.release()
    finally:
        runner.cancel()
        await a.close()
        await b.close()


async def test_spend_is_seeded_from_the_ledger_once_by_processes_starting_together(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    client, prefix = shared
    cfg = counters_config(REDIS_URL, prefix, upstream)
    gw = await start(start_gateway, upstream, cfg, monkeypatch)
    secret = await gw.key(team="t", limits=Limits(budget_nusd=10**12))
    assert await outcomes(gw.openai(secret, http_client=http), 5, model="fast") == ["ok"] * 5
    row = await gw.fetchone("SELECT SUM(cost_nusd) FROM ledger")
    assert row is not None and row[0] > 0
    spent = int(row[0])
    key_spend = f"{prefix}spend:key:{_id(gw, secret)}"
    assert sum(map(int, (await client.hgetall(key_spend)).values())) == spent
    # Redis loses its data (a restart without persistence); three processes start at once.
    await drop_prefix(client, prefix)
    state = gw.gw.store.limit_state
    fresh = [RedisLimiter(state, cfg) for _ in range(3)]
    try:
        await asyncio.gather(*(f.start() for f in fresh))
        seeded = [await f.seed() for f in fresh]  # the marker is there: no second seed
    finally:
        for f in fresh:
            await f.close()
    assert seeded == [False] * 3
    assert sum(map(int, (await client.hgetall(key_spend)).values())) == spent
    assert sum(map(int, (await client.hgetall(f"{prefix}spend:team:t")).values())) == spent


async def _redis_now(client: aioredis.Redis) -> float:
    secs, micros = await client.time()
    return secs + micros / 1e6


async def _tat(client: aioredis.Redis, key: str) -> float:
    """A GCRA key's theoretical arrival time (Redis's clock)."""
    raw = await client.get(key)
    assert raw is not None, key
    return float(raw)


async def test_a_provider_tpm_quota_in_redis_is_settled_to_the_real_tokens(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    client, prefix = shared
    cfg = counters_config(REDIS_URL, prefix, upstream)
    cfg.quotas["openai"] = QuotaConfig("openai", rpm=600, tpm=60_000)
    gw = await start(start_gateway, upstream, cfg, monkeypatch)
    key = await gw.key(team="t")
    # Taken up front: the prompt and 1024 default output tokens (~1 s of 60k/min);
    # settled: the 18 tokens the upstream billed (18 ms after the call was admitted,
    # some time between `before` and `after`; bounds, not a race with the clock).
    before = await _redis_now(client)
    assert await outcomes(gw.openai(key, http_client=http), 1, model="fast") == ["ok"]
    after = await _redis_now(client)
    assert after - before < 0.9, "too slow to tell a settled quota from a reserved one"
    tpm = await _tat(client, f"{prefix}quota:openai:tpm")
    assert before + 0.018 - 0.001 <= tpm <= after + 0.018 + 0.001
    rpm = await _tat(client, f"{prefix}quota:openai:rpm")
    assert before + 0.1 - 0.001 <= rpm <= after + 0.1 + 0.001


async def test_an_upstream_429_pauses_the_model_for_every_process(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    """Two gateways on one Redis: a 429 seen by one pauses the model in the other."""
    client, prefix = shared
    cfg = counters_config(REDIS_URL, prefix, upstream)
    cfg.quotas["openai"] = QuotaConfig("openai", rpm=600)
    cfg.limits.queue_max_wait = 1.0
    a = await start(start_gateway, upstream, cfg, monkeypatch)
    b = await start(start_gateway, upstream, cfg, monkeypatch)
    upstream.fail_status, upstream.fail_headers = 429, {"Retry-After": "30"}
    key_a, key_b = await a.key(team="t"), await b.key(team="t")
    assert await outcomes(a.openai(key_a, http_client=http), 1, model="fast") == ["429"]
    pause = await _tat(client, f"{prefix}quota:openai/gpt-4o-mini:pause")
    assert 25 < pause - await _redis_now(client) <= 30
    upstream.fail_status = 0
    calls = upstream.calls
    # The other process queues the model's calls instead of sending them: the pause
    # (30 s) is longer than it queues (1 s), so it answers 429 without calling.
    assert await outcomes(b.openai(key_b, http_client=http), 1, model="fast") == [
        "upstream_quota_exceeded"
    ]
    assert upstream.calls == calls


async def test_metrics_budget_ratio_is_the_spend_of_every_process(
    start_gateway: StartGateway,
    upstream: Upstream,
    shared: tuple[aioredis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    http: openai.DefaultAsyncHttpxClient,
) -> None:
    """Two gateways on one Redis: b's /metrics shows the spend a made."""
    _, prefix = shared
    cfg = counters_config(REDIS_URL, prefix, upstream)
    a = await start(start_gateway, upstream, cfg, monkeypatch)
    b = await start(start_gateway, upstream, cfg, monkeypatch)
    for gw in (a, b):
        await gw.team("web", Limits(budget_nusd=10**9))  # $1
    await until(lambda: "web" in b.gw.directory.snapshot.teams, what="b sees the team")
    key = await a.key(team="web")
    assert await outcomes(a.openai(key, http_client=http), 3, model="fast") == ["ok"] * 3
    spent = (await a.gw.store.reports.spend_of("team", "web", 0, 2e9))[0]
    assert spent > 0
    async with aiohttp.ClientSession() as web_, web_.get(b.url + "/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith('aigw_budget_used_ratio{team="web"}'))
    assert float(line.rpartition(" ")[2]) == pytest.approx(spent / 10**9)


async def test_doctor_checks_the_counters_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("AIGW_COUNTERS_PASSWORD", "REDISCLI_AUTH"):
        monkeypatch.delenv(env, raising=False)
    cfg = Config()
    cfg.counters.url = REDIS_URL
    # Skips (or fails under AIGW_REQUIRE_SERVICES=1) when the test Redis is unreachable.
    await (await shared_redis()).aclose()
    good = await doctor.check_counters(cfg, 5.0)
    assert good.status in ("ok", "warn") and "round trip" in good.detail, good
    locked = PrivateRedis(password="s3cret-pw")
    await locked.start()
    try:
        cfg.counters.url = locked.url
        refused = await doctor.check_counters(cfg, 5.0)
        assert refused.status == "fail" and "password" in refused.detail, refused
        assert refused.fix is not None and "AIGW_COUNTERS_PASSWORD" in refused.fix
        monkeypatch.setenv("AIGW_COUNTERS_PASSWORD", "wrong")
        assert (await doctor.check_counters(cfg, 5.0)).status == "fail"
        monkeypatch.setenv("AIGW_COUNTERS_PASSWORD", "s3cret-pw")
        assert (await doctor.check_counters(cfg, 5.0)).status in ("ok", "warn")
    finally:
        await locked.stop()
    cfg.counters.url = locked.url  # stopped: nothing listens there now
    gone = await doctor.check_counters(cfg, 5.0)
    assert gone.status == "fail" and "unreachable" in gone.detail, gone
    assert "s3cret-pw" not in repr((refused, gone))


async def test_doctor_runs_the_counters_check_when_a_url_is_set(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await asyncio.to_thread(CliRunner().invoke, cli_app, ["init"])).exit_code == 0
    cfg = config_mod.load(paths.resolve().config_file)
    cfg.counters.url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    config_mod.save(cfg, paths.resolve().config_file)
    res = await asyncio.to_thread(CliRunner().invoke, cli_app, ["doctor", "--offline", "--json"])
    checks = {c["name"]: c for c in orjson.loads(res.output)["checks"]}
    assert res.exit_code == 1
    assert checks["counters"]["status"] == "fail"
    assert "127.0.0.1:1" in checks["counters"]["detail"]


def _limiter(gw: RunningGateway) -> RedisLimiter:
    limiter = gw.app[LIMITER]
    assert isinstance(limiter, RedisLimiter)
    return limiter


def _id(gw: RunningGateway, key: str) -> str:
    rec = gw.gw.directory.key(hash_key(key))
    assert rec is not None
    return rec.id
