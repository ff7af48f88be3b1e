"""Hard budgets through the real server: the worst case is reserved up front, so no
burst of concurrent calls can push spend past the budget; spend survives restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest

from aigw import report
from aigw.config import Config, ProviderConfig
from aigw.limits.periods import Calendar
from aigw.model import Limits
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Reply
from tests.fakes.openai import FakeOpenAI
from tests.limitkit import HI, PER_CALL, WORST_20, gateways, outcomes, team


async def spent(gw: RunningGateway, team_name: str) -> int:
    row = await gw.fetchone(
        "SELECT COALESCE(SUM(cost_nusd), 0) FROM ledger WHERE team = ?", (team_name,)
    )
    assert row is not None
    return int(row[0])


async def test_concurrent_calls_never_push_spend_past_the_budget(
    gateway: RunningGateway,
) -> None:
    budget = 100_000  # $0.0001: about 17 calls, but only 7 worst cases fit at once
    await team(gateway, "batch", budget_nusd=budget)
    keys = [await gateway.key(team="batch", app=f"job{i}") for i in range(4)]
    clients = [gateway.openai(k) for k in keys]
    codes: list[str] = []
    try:
        for _ in range(10):  # waves of concurrent calls, streamed and not
            wave = await asyncio.gather(
                *[outcomes(c, 10, "fast", max_tokens=20) for c in clients],
                *[outcomes(c, 5, "fast", max_tokens=20, stream=True) for c in clients],
            )
            codes += [code for w in wave for code in w]
            # Never over, not even while the wave was running.
            assert await spent(gateway, "batch") <= budget
            if not any(code == "ok" for w in wave for code in w):
                break
    finally:
        for c in clients:
            await c.close()
    total = await spent(gateway, "batch")
    assert total <= budget
    assert total == codes.count("ok") * PER_CALL
    # And the budget was used, not refused early: less than one worst case is left.
    assert budget - total < WORST_20
    assert codes.count("budget_exceeded") > 0
    spend = gateway.gw.limiter.spend[("team", "batch")]
    assert spend.reserved == 0  # every reservation was released


async def test_refusal_says_when_the_budget_resets(gateway: RunningGateway) -> None:
    await team(gateway, "small", budget_nusd=PER_CALL + WORST_20 - 1, period="week")
    key = await gateway.key(team="small")
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="fast", messages=HI, max_tokens=20)
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=20)
    err = info.value
    assert err.code == "budget_exceeded"
    assert err.body["type"] == "insufficient_quota"  # type: ignore[index]
    week = Calendar("UTC").period("week", time.time())
    assert f"The budget resets at {week.end.isoformat()} 00:00 UTC." in err.message
    assert "Budget exceeded for team small" in err.message
    retry = int(err.response.headers["Retry-After"])
    assert abs(retry - (week.end_ts - time.time())) < 5


async def test_without_max_tokens_the_worst_case_is_the_models_maximum_output(
    gateway: RunningGateway,
) -> None:
    # gpt-4o-mini may write 16,384 tokens: about $0.0098 of output in the worst case.
    await team(gateway, "tight", budget_nusd=5_000_000)  # $0.005
    key = await gateway.key(team="tight")
    async with gateway.openai(key) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="fast", messages=HI)
        assert "Setting max_tokens lowers the worst case" in info.value.message
        await client.chat.completions.create(model="fast", messages=HI, max_tokens=100)


async def test_a_key_budget_applies_on_top_of_the_team(gateway: RunningGateway) -> None:
    await team(gateway, "rich", budget_nusd=10**12)
    capped = await gateway.key(team="rich", limits=Limits(budget_nusd=PER_CALL + WORST_20 - 1))
    other = await gateway.key(team="rich")
    async with gateway.openai(capped) as c1, gateway.openai(other) as c2:
        await c1.chat.completions.create(model="fast", messages=HI, max_tokens=20)
        with pytest.raises(openai.RateLimitError) as info:
            await c1.chat.completions.create(model="fast", messages=HI, max_tokens=20)
        assert "Budget exceeded for key key_" in info.value.message
        assert "(team rich)" in info.value.message
        await c2.chat.completions.create(model="fast", messages=HI, max_tokens=20)


async def test_unpriced_models_are_refused_under_a_budget_unless_allowed(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    for policy in ("refuse", "allow"):
        cfg = Config()
        cfg.budgets.unpriced = policy
        gw = await start_gateway(
            providers={"openai": ("openai", fake_openai.base_url + "/v1")}, config=cfg
        )
        await team(gw, "b", budget_nusd=10**9)
        free = await gw.key(team="no-budget")
        key = await gw.key(team="b")
        async with gw.openai(key) as client, gw.openai(free) as unbudgeted:
            await unbudgeted.chat.completions.create(model="openai/llama-local", messages=HI)
            if policy == "refuse":
                with pytest.raises(openai.PermissionDeniedError) as info:
                    await client.chat.completions.create(model="openai/llama-local", messages=HI)
                assert info.value.code == "budget_unpriced_model"
                assert '[prices."openai/llama-local"]' in info.value.message
            else:
                await client.chat.completions.create(model="openai/llama-local", messages=HI)
                rows = await report.budgets(gw.gw.store, cfg, time.time())
                assert [(r.name, r.spent_nusd, r.unpriced) for r in rows] == [("b", 0, 1)]


async def test_spend_of_the_period_survives_a_restart(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    def config() -> Config:
        cfg = Config()
        cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
        return cfg

    fake_openai.default = Reply()
    budget = 3 * PER_CALL + WORST_20 - 1  # room for exactly three calls of max_tokens=20
    async with gateways(tmp_path / "state.db") as start:
        gw = await start(config())
        await team(gw, "t", budget_nusd=budget, period="day")
        key = await gw.key(team="t")
        async with gw.openai(key) as client:
            assert await outcomes(client, 1, "openai/gpt-4o-mini", max_tokens=20) == ["ok"]
            assert await outcomes(client, 1, "openai/gpt-4o-mini", max_tokens=20) == ["ok"]
        await gw.runner.cleanup()

        again = await start(config())
        day = again.gw.limiter.calendar.period("day", time.time())
        assert again.gw.limiter.spend[("team", "t")].total(day) == 2 * PER_CALL
        async with again.openai(key) as client:
            results = [
                (await outcomes(client, 1, "openai/gpt-4o-mini", max_tokens=20))[0]
                for _ in range(3)
            ]
        # Two calls before the restart, one after; a fourth would pass the budget.
        assert results == ["ok", "budget_exceeded", "budget_exceeded"]


async def test_calls_in_flight_hold_their_reservation(gateway: RunningGateway) -> None:
    """A refusal caused only by running calls says so and asks for a short wait."""
    await team(gateway, "r", budget_nusd=WORST_20 + 1)
    key = await gateway.key(team="r")
    limiter = gateway.gw.limiter
    spend = limiter.spend_of("team", "r")
    spend.reserved = 5  # as if a call were running
    async with gateway.openai(key) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=20)
    assert "held by requests in flight" in info.value.message
    assert "try again shortly" in info.value.message
    assert info.value.response.headers["Retry-After"] == "1"
    assert limiter.alerts.fired == set()  # busy, not out of budget: no alert
    spend.reserved = 0


async def test_budget_periods_use_the_configured_time_zone(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = Config()
    cfg.budgets.timezone = "Pacific/Auckland"
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")}, config=cfg
    )
    await team(gw, "nz", budget_nusd=1)
    month = Calendar("Pacific/Auckland").period("month", time.time())
    key = await gw.key(team="nz")
    async with gw.openai(key) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=HI, max_tokens=1
            )
    assert f"resets at {month.end.isoformat()} 00:00 Pacific/Auckland" in info.value.message
    rows = await report.budgets(gw.gw.store, cfg, time.time())
    assert rows[0].period == month and rows[0].refused is False  # not persisted yet
    await gw.gw.limiter.persist()
    rows = await report.budgets(gw.gw.store, cfg, time.time())
    assert rows[0].refused is True
