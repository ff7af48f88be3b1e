"""Where the routing core (multi-target routes, failover) meets the edges (regions,
x-aigw-route, key pools), through the real server with the official SDKs.

Data residency is never waived: a target outside the caller's regions is left out
before the first attempt, so no failover path reaches it, even when every allowed
target fails. The header's strategy replaces the route's. A key pool that every key
answered with 429 fails over to the next target as a 429 does.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import openai
import orjson
import pytest
from aiohttp import web

from aigw.config import (
    Config,
    ModelConfig,
    ProviderConfig,
    RoutingConfig,
    TargetConfig,
    parse,
)
from aigw.errors import GatewayError, Wire
from aigw.model import Limits
from aigw.pipeline.attempts import Attempts
from aigw.pipeline.context import Context
from aigw.pricing import PriceBook
from aigw.providers import Provider, adapters
from aigw.routing.constraints import constraints
from aigw.routing.health import LocalHealth
from aigw.routing.retry import STATUS, UpstreamFailed
from aigw.routing.targets import Target
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


def dead_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    eu, us = FakeOpenAI(), FakeOpenAI()
    for fake in (eu, us):
        await fake.start()
    yield eu, us
    for fake in (eu, us):
        await fake.close()


def route_config(
    eu_url: str, us_url: str, targets: list[str], strategy: str = "failover"
) -> Config:
    """Providers eu (region eu) and us (region us), one route ``smart`` over them."""
    cfg = Config()
    cfg.routing.backoff = 0.01
    cfg.routing.backoff_max = 0.02
    cfg.providers = {
        "eu": ProviderConfig("eu", "openai", eu_url, region="eu"),
        "us": ProviderConfig("us", "openai", us_url, region="us"),
    }
    cfg.models["smart"] = ModelConfig(
        "smart",
        targets[0],
        "gpt-4o-mini",
        strategy=strategy,
        allow_pricier_fallback=True,
        targets=tuple(TargetConfig(p, "gpt-4o-mini") for p in targets),
    )
    return cfg


async def eu_key(gw: RunningGateway) -> str:
    await gw.gw.store.teams.create("eu-team", Limits(regions=("eu",)))
    await gw.gw.directory.refresh()
    return await gw.key(team="eu-team")


async def rows(gw: RunningGateway) -> list[dict[str, Any]]:
    got = await gw.fetchall("SELECT status, provider, attempts, routing FROM ledger ORDER BY id")
    return [dict(r) for r in got]


@pytest.mark.parametrize("order", [["us", "eu"], ["eu", "us"]], ids=["us-first", "eu-first"])
@pytest.mark.parametrize("strategy", ["failover", "weighted", "latency", "cost"])
async def test_failover_never_leaves_the_callers_regions(
    start_gateway: StartGateway,
    fakes: tuple[FakeOpenAI, FakeOpenAI],
    order: list[str],
    strategy: str,
) -> None:
    eu, us = fakes
    eu.default = Fail(500, "eu is down")
    cfg = route_config(eu.base_url + "/v1", us.base_url + "/v1", order, strategy)
    gw = await start_gateway(config=cfg)
    key = await eu_key(gw)
    async with gw.openai(key) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="smart", messages=HI)
    assert info.value.status_code == 500
    assert us.requests == []  # never, though it would have answered
    assert len(eu.requests) == 3  # [routing] max_attempts, all in the caller's region
    [row] = await rows(gw)
    assert row["status"] == 500 and row["attempts"] == 3
    routing = orjson.loads(row["routing"])
    assert {f["target"] for f in routing["failed"]} == {"eu/gpt-4o-mini"}
    assert routing["skipped"] == [
        {"target": "us/gpt-4o-mini", "reason": "region: provider 'us' is in region us"}
    ]


async def test_a_dead_allowed_target_does_not_open_the_other_region(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    _, us = fakes
    cfg = route_config(f"http://127.0.0.1:{dead_port()}/v1", us.base_url + "/v1", ["eu", "us"])
    gw = await start_gateway(config=cfg)
    key = await eu_key(gw)
    async with gw.openai(key) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="smart", messages=HI)
    assert info.value.status_code == 502
    assert us.requests == []


async def test_the_same_route_fails_over_for_an_unrestricted_caller(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    """The control: the us target does answer when the caller may reach it."""
    eu, us = fakes
    eu.default = Fail(500, "eu is down")
    gw = await start_gateway(
        config=route_config(eu.base_url + "/v1", us.base_url + "/v1", ["eu", "us"])
    )
    async with gw.openai(await gw.key()) as client:
        raw = await client.chat.completions.with_raw_response.create(model="smart", messages=HI)
    assert raw.headers["x-aigw-provider"] == "us" and raw.headers["x-aigw-attempts"] == "2"
    assert len(us.requests) == 1


async def test_a_header_asking_for_the_other_region_is_a_403(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    eu, us = fakes
    cfg = route_config(eu.base_url + "/v1", us.base_url + "/v1", ["us", "eu"])
    gw = await start_gateway(config=cfg)
    key = await eu_key(gw)
    async with gw.openai(key) as client:
        with pytest.raises(openai.PermissionDeniedError) as info:
            await client.chat.completions.create(
                model="smart", messages=HI, extra_headers={"x-aigw-route": '{"region": "us"}'}
            )
    assert info.value.code == "region_not_allowed"
    assert "region" in info.value.message and "eu" in info.value.message
    assert eu.requests == [] and us.requests == []
    [row] = await rows(gw)
    assert row["status"] == 403 and row["attempts"] == 0
    skipped = orjson.loads(row["routing"])["skipped"]
    assert [s["target"] for s in skipped] == ["us/gpt-4o-mini", "eu/gpt-4o-mini"]


async def test_the_header_strategy_replaces_the_routes(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    eu, us = fakes
    cfg = route_config(eu.base_url + "/v1", us.base_url + "/v1", ["eu", "us"])
    # eu serves the pricier model: failover goes there first, cost does not.
    cfg.models["smart"] = ModelConfig(
        "smart",
        "eu",
        "gpt-4o",
        allow_pricier_fallback=True,
        targets=(TargetConfig("eu", "gpt-4o"), TargetConfig("us", "gpt-4o-mini")),
    )
    gw = await start_gateway(config=cfg)
    async with gw.openai(await gw.key()) as client:
        plain = await client.chat.completions.with_raw_response.create(model="smart", messages=HI)
        cheap = await client.chat.completions.with_raw_response.create(
            model="smart", messages=HI, extra_headers={"x-aigw-route": '{"strategy": "cost"}'}
        )
    assert plain.headers["x-aigw-provider"] == "eu"
    assert cheap.headers["x-aigw-provider"] == "us"


async def test_a_pool_whose_every_key_got_429_fails_over(
    start_gateway: StartGateway,
    fakes: tuple[FakeOpenAI, FakeOpenAI],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eu, us = fakes
    monkeypatch.setenv("AIGW_EU_API_KEY", "eu-key-one,eu-key-two")
    eu.default = Fail(429, "rate limited: eu-key-one")
    gw = await start_gateway(
        config=route_config(eu.base_url + "/v1", us.base_url + "/v1", ["eu", "us"])
    )
    async with gw.openai(await gw.key()) as client:
        raw = await client.chat.completions.with_raw_response.create(model="smart", messages=HI)
    assert raw.headers["x-aigw-provider"] == "us"
    assert raw.headers["x-aigw-attempts"] == "2"  # the rotation is one attempt of eu
    sent = sorted(r.headers["Authorization"] for r in eu.requests)
    assert sent == ["Bearer eu-key-one", "Bearer eu-key-two"]
    [row] = await rows(gw)
    [failed] = orjson.loads(row["routing"])["failed"]
    assert failed["target"] == "eu/gpt-4o-mini" and failed["status"] == 429
    assert "eu-key-one" not in row["routing"]


async def test_the_attempt_loop_itself_never_sends_outside_the_regions() -> None:
    """Defence in depth: the route step never puts an out-of-region target among the
    candidates, and the attempt loop would not send to one if it were there."""
    mock = adapters()["mock"]

    def target(name: str, region: str) -> Target:
        pc = ProviderConfig(name, "mock", "", region=region)
        return Target(Provider(pc, mock, cast(Any, None)), "m")

    us, eu = target("us", "us"), target("eu", "eu")
    sent: list[str] = []

    async def send(ctx: Context, t: Target, left: float) -> web.StreamResponse:
        sent.append(t.id)
        ctx.tries += 1
        raise UpstreamFailed(GatewayError(500, "down", type="server_error"), STATUS, 500)

    async def no_wait(_seconds: float) -> None:
        return None

    cfg = RoutingConfig()
    attempts = Attempts(cfg, LocalHealth(cfg), PriceBook({}))
    attempts.sleep = no_wait
    ctx = Context(Wire.OPENAI, "chat.completions", model="smart", candidates=[us, eu])
    ctx.constraints = constraints(frozenset({"eu"}), None)
    with pytest.raises(GatewayError) as info:
        await attempts.run(ctx, send)
    assert info.value.status == 500 and sent == ["eu/m"] * cfg.max_attempts
    assert (us, "region") in ctx.skipped

    sent.clear()
    ctx = Context(Wire.OPENAI, "chat.completions", model="smart", candidates=[us])
    ctx.constraints = constraints(frozenset({"eu"}), None)
    with pytest.raises(GatewayError) as info:
        await attempts.run(ctx, send)
    assert info.value.status == 403 and info.value.code == "region_not_allowed"
    assert sent == []


async def test_a_target_without_tools_is_skipped_for_a_tool_call(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    """Capability overrides per targets entry: the route skips the target that lacks
    tools for a call with tools (the ledger says why) and uses it for one without."""
    eu, us = fakes
    cfg = parse(
        {
            "providers": {
                "eu": {"type": "openai", "base_url": eu.base_url + "/v1", "region": "eu"},
                "us": {"type": "openai", "base_url": us.base_url + "/v1", "region": "us"},
            },
            "models": {
                "smart": {
                    "allow_pricier_fallback": True,
                    "targets": [
                        {"provider": "eu", "model": "gpt-4o-mini", "tools": False},
                        {"provider": "us", "model": "gpt-4o-mini"},
                    ],
                }
            },
        }
    )
    gw = await start_gateway(config=cfg)
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    async with gw.openai(await gw.key()) as client:
        plain = await client.chat.completions.with_raw_response.create(model="smart", messages=HI)
        tools = await client.chat.completions.with_raw_response.create(
            model="smart", messages=HI, tools=[tool]
        )
    assert plain.headers["x-aigw-provider"] == "eu"
    assert tools.headers["x-aigw-provider"] == "us"
    first, second = await rows(gw)
    assert first["routing"] is None
    [skip] = orjson.loads(second["routing"])["skipped"]
    assert skip["target"] == "eu/gpt-4o-mini" and skip["reason"].startswith("tools: ")
