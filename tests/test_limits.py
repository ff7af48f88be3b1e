"""Rate limits through the real server: exact under concurrency, smooth, settled to
real usage, per key on top of per team, reloaded live and kept across a restart."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import openai
import pytest

from aigw.config import Config, ModelConfig, ProviderConfig
from aigw.model import Limits
from aigw.store.base import Store
from aigw.tokens import chat_prompt_tokens
from aigw.usage import Usage
from tests.conftest import RunningGateway
from tests.fakes.base import Hang, Reply
from tests.fakes.openai import FakeOpenAI
from tests.limitkit import HI, freeze, gateways, outcomes, team


async def test_rpm_60_admits_exactly_60_of_200_concurrent(gateway: RunningGateway) -> None:
    freeze(gateway)
    key = await gateway.key(team="batch", limits=Limits(rpm=60))
    async with gateway.openai(key) as client:
        results = await outcomes(client, 200)
    assert results.count("ok") == 60 and results.count("rate_limit_exceeded") == 140
    rows = await gateway.fetchall("SELECT status, COUNT(*) n FROM ledger GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {200: 60, 429: 140}


async def test_team_limit_is_shared_by_its_keys_and_a_key_adds_its_own(
    gateway: RunningGateway,
) -> None:
    freeze(gateway)
    await team(gateway, "web", rpm=5)
    a, b = await gateway.key(team="web"), await gateway.key(team="web")
    tight = await gateway.key(team="web", limits=Limits(rpm=1))
    async with gateway.openai(a) as ca, gateway.openai(b) as cb, gateway.openai(tight) as ct:
        assert (await outcomes(ct, 3)).count("ok") == 1  # the key's own limit binds first
        both = await asyncio.gather(outcomes(ca, 5), outcomes(cb, 5))
    assert sum(r.count("ok") for r in both) == 4  # 5 for the team, one went to `tight`


async def test_rejection_shape_and_the_real_wait(gateway: RunningGateway) -> None:
    clock = freeze(gateway)
    key = await gateway.key(team="t", limits=Limits(rpm=2))
    async with gateway.openai(key) as client:
        first = await client.chat.completions.with_raw_response.create(
            model="mock/echo", messages=HI
        )
        h = first.headers
        assert h["x-ratelimit-limit-requests"] == "2"
        assert h["x-ratelimit-remaining-requests"] == "1"
        assert h["x-ratelimit-reset-requests"] == "30s"
        await client.chat.completions.create(model="mock/echo", messages=HI)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="mock/echo", messages=HI)
        err = info.value
        assert err.code == "rate_limit_exceeded"
        assert err.body["type"] == "requests"  # type: ignore[index]
        assert "requests per minute (RPM): Limit 2, Used 2" in err.message
        assert "try again in 30s" in err.message
        assert err.response.headers["Retry-After"] == "30"
        assert err.response.headers["retry-after-ms"] == "30000"
        assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert err.response.headers["x-ratelimit-reset-requests"] == "1m0s"
        clock.t += 29.9  # not quite
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="mock/echo", messages=HI)
        clock.t += 0.1  # exactly the wait it announced
        await client.chat.completions.create(model="mock/echo", messages=HI)


async def test_tokens_are_estimated_up_front_and_settled_to_real_usage(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    freeze(gateway)
    key = await gateway.key(team="t", limits=Limits(tpm=1000))
    fake_openai.default = Reply(usage=Usage(prompt_tokens=11, completion_tokens=7))
    async with gateway.openai(key) as client:
        r1 = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, max_tokens=500
        )
        # At admission: the prompt estimate and max_tokens were taken.
        asked = chat_prompt_tokens({"messages": HI}) + 500
        assert r1.headers["x-ratelimit-limit-tokens"] == "1000"
        assert r1.headers["x-ratelimit-remaining-tokens"] == str(1000 - asked)
        r2 = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, max_tokens=500
        )
        # The first call used 18 tokens; the rest came back.
        assert r2.headers["x-ratelimit-remaining-tokens"] == str(1000 - 18 - asked)
        # A call that uses more than it announced is charged the difference.
        fake_openai.default = Reply(usage=Usage(prompt_tokens=11, completion_tokens=990))
        await client.chat.completions.create(model="fast", messages=HI, max_tokens=10)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=10)
    assert info.value.body["type"] == "tokens"  # type: ignore[index]
    assert "TPM): Limit 1000, Used 1037" in info.value.message  # 18 + 18 + 1001


async def test_streams_settle_their_tokens_too(gateway: RunningGateway) -> None:
    freeze(gateway)
    key = await gateway.key(team="t", limits=Limits(tpm=10_000))
    async with gateway.openai(key) as client:
        stream = await client.chat.completions.create(
            model="mock/echo", messages=HI, stream=True, max_tokens=2000
        )
        async for _ in stream:
            pass
        raw = await client.chat.completions.with_raw_response.create(
            model="mock/echo", messages=HI, max_tokens=1
        )
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert 10_000 - 9 - 100 < remaining < 10_000 - 9  # the stream kept only what it used


async def test_max_parallel_counts_requests_in_flight(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await gateway.key(team="t", limits=Limits(max_parallel=2))
    fake_openai.then(Hang(0.5), Hang(0.5))
    async with gateway.openai(key) as client:

        async def slow() -> None:
            with pytest.raises(openai.APIStatusError):  # the hung calls end in an error
                await client.chat.completions.create(model="fast", messages=HI)

        slow_calls = [asyncio.create_task(slow()) for _ in range(2)]
        await asyncio.sleep(0.2)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="fast", messages=HI)
        assert "at most 2 may be in flight" in info.value.message
        assert info.value.response.headers["Retry-After"] == "1"
        await asyncio.gather(*slow_calls)
        # Failed calls gave their slots back.
        await asyncio.gather(*[client.chat.completions.create(model="fast", messages=HI)] * 1)
        await client.chat.completions.create(model="fast", messages=HI)


async def test_burst_share_is_configurable(start_gateway: object, fake_openai: FakeOpenAI) -> None:
    cfg = Config()
    cfg.limits.burst = 0.1
    gw = await start_gateway(providers={"mock": ("mock", "")}, config=cfg)  # type: ignore[operator]
    freeze(gw)
    key = await gw.key(limits=Limits(rpm=60))
    async with gw.openai(key) as client:
        assert (await outcomes(client, 20)).count("ok") == 6


async def test_a_team_edit_reaches_the_running_server(
    gateway: RunningGateway, cli_store: Store
) -> None:
    freeze(gateway)
    key = await gateway.key(team="live")
    await cli_store.teams.create("live", Limits(rpm=1))  # as `aigw teams create` would
    async with gateway.openai(key) as client:
        deadline = time.monotonic() + 1.5
        while (await outcomes(client, 2)).count("rate_limit_exceeded") == 0:
            assert time.monotonic() < deadline, "the new team limit never applied"
            await asyncio.sleep(0.05)
        team_rec = await cli_store.teams.get("live")
        await cli_store.teams.update("live", team_rec.limits.replace(rpm=None))
        deadline = time.monotonic() + 1.5
        while (await outcomes(client, 3)).count("rate_limit_exceeded"):
            assert time.monotonic() < deadline, "removing the limit never applied"
            await asyncio.sleep(0.05)


async def test_models_globs_restrict_calls_and_the_model_list(gateway: RunningGateway) -> None:
    key = await gateway.key(limits=Limits(models=("openai/gpt-4o-mini*",)))
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
        await client.chat.completions.create(model="fast", messages=HI)  # an alias for it
        with pytest.raises(openai.PermissionDeniedError) as info:
            await client.chat.completions.create(model="mock/echo", messages=HI)
        assert info.value.code == "model_not_allowed"
        ids = {m.id async for m in client.models.list()}
    assert ids and all(i == "fast" or i.startswith("openai/gpt-4o-mini") for i in ids)
    assert "fast" in ids
    await team(gateway, "narrow", models=("mock/*",))
    both = await gateway.key(team="narrow", limits=Limits(models=("openai/*",)))
    async with gateway.openai(both) as client:
        # A key's globs and its team's must both allow the model.
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="mock/echo", messages=HI)
        assert [m.id async for m in client.models.list()] == []


# -- restart ---------------------------------------------------------------------------


def mock_config() -> Config:
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    cfg.models["echo"] = ModelConfig("echo", "mock", "echo")
    return cfg


async def test_counters_survive_a_restart(tmp_path: Path) -> None:
    async with gateways(tmp_path / "state.db") as start:
        gw = await start(mock_config())
        key = await gw.key(team="t", limits=Limits(rpm=3))
        async with gw.openai(key) as client:
            assert (await outcomes(client, 2, "echo")).count("ok") == 2
        await gw.runner.cleanup()  # close() writes the counters

        again = await start(mock_config())
        async with again.openai(key) as client:
            # One left of three, not a fresh bucket of three.
            assert (await outcomes(client, 3, "echo")).count("ok") == 1
        rows = await again.fetchall("SELECT bucket FROM limit_counters")
        assert [r[0] for r in rows] == [f"key:{_id(again, key)}:rpm"]


async def test_counters_are_written_in_batches_while_serving(tmp_path: Path) -> None:
    cfg = mock_config()
    cfg.limits.persist_interval = 0.1
    async with gateways(tmp_path / "state.db") as start:
        gw = await start(cfg)
        await check_batches(gw)


async def check_batches(gw: RunningGateway) -> None:
    key = await gw.key(team="t", limits=Limits(rpm=10, tpm=1000))
    async with gw.openai(key) as client:
        await outcomes(client, 5, "echo")
    await asyncio.sleep(0.3)
    rows = await gw.fetchall("SELECT bucket, tat FROM limit_counters ORDER BY bucket")
    assert [r["bucket"].rsplit(":", 1)[1] for r in rows] == ["rpm", "tpm"]
    assert all(r["tat"] > time.time() for r in rows)


def _id(gw: RunningGateway, key: str) -> str:
    from aigw.model import hash_key

    rec = gw.gw.directory.key(hash_key(key))
    assert rec is not None
    return rec.id


def test_no_limits_means_no_headers() -> None:
    """A key and team without limits get no x-ratelimit headers (nothing to report)."""
    from aigw.limits.engine import LocalLease

    assert LocalLease().headers() == {}


async def test_reset_header_format_is_openais(gateway: RunningGateway) -> None:
    freeze(gateway)
    key = await gateway.key(team="t", limits=Limits(rpm=10, tpm=600))
    async with gateway.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock/echo", messages=HI, max_tokens=100
        )
    assert raw.headers["x-ratelimit-reset-requests"] == "6s"
    assert re.fullmatch(r"\d+(\.\d+)?s", raw.headers["x-ratelimit-reset-tokens"])
