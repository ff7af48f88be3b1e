"""Retries, failover and circuit breakers through the real server, driven by the
official SDKs against fake upstreams that fail in every way: refused connections,
hangs, 429 with Retry-After, 500, 529, streams that die before and after their first
token, a slow first byte. Checked: what the client sees and what the ledger holds."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from typer.testing import CliRunner

from aigw.cli import app as cli_app
from aigw.config import Config, ModelConfig, ProviderConfig, TargetConfig, UpstreamConfig, save
from aigw.model import Limits
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import DieMidStream, Fail, Hang, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

HI = [{"role": "user", "content": "hi"}]
CLIENTS = ("openai", "anthropic", "gemini")


def dead_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    targets: list[tuple[str, str]],
    **route: Any,
) -> Config:
    cfg = Config()
    cfg.routing.backoff = 0.01
    cfg.routing.backoff_max = 0.02
    for name, type_, url in (
        ("openai", "openai", fake_openai.base_url + "/v1"),
        ("anthropic", "anthropic", fake_anthropic.base_url),
        ("gemini", "gemini", fake_gemini.base_url),
        ("dead", "openai", f"http://127.0.0.1:{dead_port()}/v1"),
    ):
        cfg.providers[name] = ProviderConfig(name, type_, url)
    first = targets[0]
    cfg.models["smart"] = ModelConfig(
        "smart",
        first[0],
        first[1],
        targets=tuple(TargetConfig(p, m) for p, m in targets),
        **{"allow_pricier_fallback": True, **route},
    )
    return cfg


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")


async def ledger(gw: RunningGateway) -> list[dict[str, Any]]:
    return await gw.sql(
        "SELECT status, provider, upstream_model, attempts, routing, cost_nusd, error "
        "FROM ledger ORDER BY id"
    )


async def ask(
    gw: RunningGateway, key: str, client: str, stream: bool
) -> tuple[str, dict[str, str]]:
    """One chat call through ``client``'s SDK: the answer's text and headers."""
    if client == "openai":
        async with gw.openai(key) as c:
            if stream:
                resp = await c.chat.completions.with_raw_response.create(
                    model="smart",
                    messages=HI,
                    stream=True,  # type: ignore[arg-type]
                )
                text = "".join(
                    [ch.choices[0].delta.content or "" async for ch in resp.parse() if ch.choices]
                )
                return text, dict(resp.headers)
            plain = await c.chat.completions.with_raw_response.create(
                model="smart",
                messages=HI,  # type: ignore[arg-type]
            )
            return plain.parse().choices[0].message.content or "", dict(plain.headers)
    if client == "anthropic":
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as a:
            if stream:
                async with a.messages.with_streaming_response.create(
                    model="smart",
                    max_tokens=50,
                    messages=HI,
                    stream=True,  # type: ignore[arg-type]
                ) as raw:
                    headers = dict(raw.headers)
                    text = ""
                    async for line in raw.iter_lines():
                        if line.startswith("data: "):
                            ev = orjson.loads(line[6:])
                            if ev.get("type") == "content_block_delta":
                                text += ev["delta"].get("text", "")
                return text, headers
            r = await a.messages.with_raw_response.create(
                model="smart",
                max_tokens=50,
                messages=HI,  # type: ignore[arg-type]
            )
            msg = await r.parse()
            return "".join(b.text for b in msg.content if b.type == "text"), dict(r.headers)
    g = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))
    if stream:
        chunks = [
            ch
            async for ch in await g.aio.models.generate_content_stream(model="smart", contents="hi")
        ]
        text = "".join(ch.text or "" for ch in chunks)
        first = chunks[0].sdk_http_response
        return text, dict((first.headers if first else None) or {})
    answer = await g.aio.models.generate_content(model="smart", contents="hi")
    got = answer.sdk_http_response
    return answer.text or "", dict((got.headers if got else None) or {})


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_dead_target_fails_over_invisibly(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    client: str,
    stream: bool,
) -> None:
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("dead", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    text, headers = await ask(gw, key, client, stream)
    assert text == "Hello from the fake provider."
    assert headers["x-aigw-provider"] == "anthropic"
    assert headers["x-aigw-model"] == "claude-sonnet-4-6"
    assert headers["x-aigw-upstream-model"] == "claude-sonnet-4-6"
    assert headers["x-aigw-attempts"] == "2"
    [row] = await ledger(gw)
    assert (row["status"], row["provider"], row["attempts"]) == (200, "anthropic", 2)
    failed = orjson.loads(row["routing"])["failed"]
    assert failed == [
        {
            "target": "dead/gpt-4o-mini",
            "status": 502,
            "code": "upstream_unreachable",
            "kind": "connect",
        }
    ]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_stream_that_dies_before_its_first_token_fails_over(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    client: str,
) -> None:
    # Anthropic's stream dies after message_start and content_block_start: no text yet,
    # but message_start reported input usage, so the failed attempt is billed.
    fake_anthropic.then(DieMidStream(after=2))
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("anthropic", "claude-sonnet-4-6"), ("gemini", "gemini-2.5-flash")],
    )
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    text, headers = await ask(gw, key, client, True)
    assert text == "Hello from the fake provider."
    assert headers["x-aigw-provider"] == "gemini"
    assert headers["x-aigw-attempts"] == "2"
    [row] = await ledger(gw)
    assert row["status"] == 200 and row["provider"] == "gemini" and row["attempts"] == 2
    [failed] = orjson.loads(row["routing"])["failed"]
    assert failed["target"] == "anthropic/claude-sonnet-4-6" and failed["kind"] == "cut"
    assert failed["prompt_tokens"] == 11 and failed["cost_nusd"] > 0
    # The row's cost is the answer's plus the billed failed attempt's.
    gemini_cost = gw.gw.prices.cost_nusd("gemini", "gemini-2.5-flash", _fake_usage())
    assert gemini_cost is not None
    assert row["cost_nusd"] == gemini_cost + failed["cost_nusd"]


def _fake_usage() -> Any:
    from aigw.usage import Usage

    return Usage(prompt_tokens=11, completion_tokens=7)


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_stream_that_dies_after_its_first_token_ends_with_an_error_event(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    client: str,
) -> None:
    fake_openai.then(DieMidStream(after=3))  # role, "Hel", "lo " then gone
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    path, body = {
        "openai": ("/v1/chat/completions", {"model": "smart", "messages": HI, "stream": True}),
        "anthropic": (
            "/v1/messages",
            {"model": "smart", "max_tokens": 50, "messages": HI, "stream": True},
        ),
        "gemini": (
            "/v1beta/models/smart:streamGenerateContent?alt=sse",
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        ),
    }[client]
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        raw = await r.read()
    assert r.status == 200  # the headers went out with the first token
    assert b"Hel" in raw
    # The stream ends with an error event in the client's own format.
    last = [line for line in raw.split(b"\n") if line.startswith(b"data: ")][-1]
    event = orjson.loads(last[6:])
    assert "closed the connection mid-stream" in event["error"]["message"]
    if client == "anthropic":
        assert event["type"] == "error"
    assert fake_anthropic.requests == []  # never switched mid-answer
    [row] = await ledger(gw)
    assert (row["status"], row["provider"], row["attempts"]) == (502, "openai", 1)


@pytest.mark.parametrize(
    "failure",
    [
        Fail(500),
        Fail(502),
        Fail(503),
        Fail(504),
        Fail(529),
        Fail(408),
        Fail(409),
        Fail(429, "slow down", headers={"Retry-After": "0"}),
    ],
    ids=lambda f: str(f.status),
)
async def test_retryable_statuses_are_retried(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    failure: Fail,
) -> None:
    fake_openai.then(failure)
    cfg = config(fake_openai, fake_anthropic, fake_gemini, [("openai", "gpt-4o-mini")])
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    text, headers = await ask(gw, key, "openai", False)
    assert text == "Hello from the fake provider."
    assert headers["x-aigw-attempts"] == "2"
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_the_requests_own_fault_is_never_retried(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    status: int,
) -> None:
    fake_openai.then(Fail(status, "bad request"))
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    async with gw.openai(key) as c:
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert info.value.status_code == status
    assert info.value.response.headers["x-aigw-attempts"] == "1"
    assert len(fake_openai.requests) == 1 and fake_anthropic.requests == []


async def test_a_long_retry_after_moves_on_and_a_hang_times_out(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    fake_openai.then(Fail(429, "slow down", headers={"Retry-After": "120"}))
    fake_anthropic.then(Hang(30))
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [
            ("openai", "gpt-4o-mini"),
            ("anthropic", "claude-sonnet-4-6"),
            ("gemini", "gemini-2.5-flash"),
        ],
    )
    cfg.upstream = UpstreamConfig(first_byte_timeout=0.5)
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    text, headers = await ask(gw, key, "anthropic", False)
    assert text == "Hello from the fake provider."
    assert headers["x-aigw-provider"] == "gemini"
    assert headers["x-aigw-attempts"] == "3"
    assert len(fake_openai.requests) == 1  # not waited for, not retried
    [row] = await ledger(gw)
    routing = orjson.loads(row["routing"])
    assert [(f["target"], f["status"]) for f in routing["failed"]] == [
        ("openai/gpt-4o-mini", 429),
        ("anthropic/claude-sonnet-4-6", 504),
    ]
    assert {"target": "openai/gpt-4o-mini", "reason": "retry_after"} in routing["skipped"]


async def test_a_slow_first_byte_is_waited_for(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    fake_openai.then(Reply(first_delay=0.3))
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    text, headers = await ask(gw, key, "openai", True)
    assert text == "Hello from the fake provider."
    assert headers["x-aigw-attempts"] == "1" and headers["x-aigw-provider"] == "openai"


async def test_failover_never_moves_to_a_pricier_target_unless_allowed(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    # gpt-4o-mini is far cheaper than claude-sonnet-4-6.
    targets = [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")]
    cfg = config(fake_openai, fake_anthropic, fake_gemini, targets, allow_pricier_fallback=False)
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    fake_openai.then(Fail(500), Fail(500), Fail(500))
    async with gw.openai(key) as c:
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert fake_anthropic.requests == []
    [row] = await ledger(gw)
    routing = orjson.loads(row["routing"])
    assert routing["skipped"] == [{"target": "anthropic/claude-sonnet-4-6", "reason": "pricier"}]
    assert row["attempts"] == 3  # the one allowed target, retried

    cfg2 = config(fake_openai, fake_anthropic, fake_gemini, targets, allow_pricier_fallback=True)
    gw2 = await start_gateway(config=cfg2)
    key2 = await gw2.key()
    fake_openai.then(Fail(500))
    _, headers = await ask(gw2, key2, "openai", False)
    assert headers["x-aigw-provider"] == "anthropic"


async def test_a_breaker_opens_skips_at_no_cost_and_closes_after_a_probe(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("dead", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    cfg.routing.breaker_failures = 2
    cfg.routing.breaker_cooldown = 3600
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    for _ in range(2):
        _, headers = await ask(gw, key, "openai", False)
        assert headers["x-aigw-attempts"] == "2"
    # Open: the dead target is skipped without an attempt.
    _, headers = await ask(gw, key, "openai", False)
    assert headers["x-aigw-attempts"] == "1" and headers["x-aigw-provider"] == "anthropic"
    rows = await ledger(gw)
    assert orjson.loads(rows[-1]["routing"])["skipped"] == [
        {"target": "dead/gpt-4o-mini", "reason": "circuit_open"}
    ]
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/readyz") as r:
        ready = await r.json()
    assert r.status == 200
    assert ready["breakers"]["dead/gpt-4o-mini"]["state"] == "open"
    assert ready["breakers"]["anthropic/claude-sonnet-4-6"]["state"] == "closed"
    # After the cooldown one probe goes through; its success closes the breaker.
    health = gw.gw.health
    health.breakers["anthropic/claude-sonnet-4-6"].consecutive = 0
    breaker = health.breakers["dead/gpt-4o-mini"]
    breaker.opened_at -= 3600
    fake_openai_port = fake_openai.port
    gw.gw.providers["dead"].config.base_url = f"http://127.0.0.1:{fake_openai_port}/v1"
    _, headers = await ask(gw, key, "openai", False)
    assert headers["x-aigw-provider"] == "dead" and breaker.state == "closed"


async def fail_status(gw: RunningGateway, key: str, client: str) -> tuple[int, str]:
    """One chat call through ``client``'s SDK that must fail: its status and message."""
    if client == "openai":
        async with gw.openai(key) as c:
            with pytest.raises(openai.APIStatusError) as oai:
                await c.chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
        return oai.value.status_code, oai.value.message
    if client == "anthropic":
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as a:
            with pytest.raises(anthropic.APIStatusError) as ant:
                await a.messages.create(model="smart", max_tokens=50, messages=HI)  # type: ignore[arg-type]
        return ant.value.status_code, ant.value.message
    g = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))
    with pytest.raises(genai_errors.APIError) as gem:
        await g.aio.models.generate_content(model="smart", contents="hi")
    return gem.value.code, gem.value.message or ""


@pytest.mark.parametrize("client", CLIENTS)
async def test_every_target_open_is_still_tried_and_a_dead_route_is_a_clear_502(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    client: str,
) -> None:
    """Panic mode: open breakers never fail a call fast. When every target really is
    down the client hears the last real failure, in its own envelope, after trying."""
    cfg = config(fake_openai, fake_anthropic, fake_gemini, [("dead", "gpt-4o-mini")])
    cfg.routing.breaker_failures = 1
    cfg.routing.breaker_cooldown = 3600
    cfg.routing.max_attempts = 2
    cfg.routing.deadline = 30
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    for _ in range(2):  # the second call finds the breaker open from its start
        status, message = await fail_status(gw, key, client)
        assert status == 502
        assert "Cannot connect to provider 'dead'" in message
    breaker = gw.gw.health.breakers["dead/gpt-4o-mini"]
    assert breaker.state == "open"
    rows = await ledger(gw)
    assert [(r["status"], r["attempts"]) for r in rows] == [(502, 2), (502, 2)]
    for row in rows:
        routing = orjson.loads(row["routing"])
        assert routing["skipped"] == []  # tried, not skipped
        assert [f["code"] for f in routing["failed"]] == ["upstream_unreachable"] * 2


async def test_when_every_breaker_is_open_the_soonest_to_half_open_is_tried_first(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("dead", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    cfg.routing.breaker_failures = 1
    cfg.routing.breaker_cooldown = 3600
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    health = gw.gw.health
    dead, claude = "dead/gpt-4o-mini", "anthropic/claude-sonnet-4-6"
    health.failure(dead)
    health.failure(claude)
    health.breakers[claude].opened_at -= 60  # opened earlier: half-open sooner
    _, headers = await ask(gw, key, "openai", False)
    assert headers["x-aigw-provider"] == "anthropic" and headers["x-aigw-attempts"] == "1"
    assert health.breakers[claude].state == "closed"  # a success closes it, as a probe's
    assert health.breakers[dead].state == "open"
    # Now the dead target is the sooner: it is tried first, then the other.
    health.failure(claude)
    assert health.breakers[claude].state == "open"
    _, headers = await ask(gw, key, "openai", False)
    assert headers["x-aigw-provider"] == "anthropic" and headers["x-aigw-attempts"] == "2"
    row = (await ledger(gw))[-1]
    assert orjson.loads(row["routing"]) == {
        "failed": [
            {
                "target": dead,
                "status": 502,
                "code": "upstream_unreachable",
                "kind": "connect",
            }
        ],
        "skipped": [],
    }


async def test_a_refused_target_is_not_retried_while_another_is_left(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("dead", "gpt-4o-mini"), ("openai", "gpt-4o-mini")],
    )
    assert cfg.routing.max_attempts == 3  # the default
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    fake_openai.then(Fail(500))
    _, headers = await ask(gw, key, "openai", False)
    # dead (refused), openai (500), openai again -- not dead a second time.
    assert headers["x-aigw-provider"] == "openai" and headers["x-aigw-attempts"] == "3"
    assert len(fake_openai.requests) == 2
    row = (await ledger(gw))[-1]
    failed = orjson.loads(row["routing"])["failed"]
    assert [(f["target"], f["status"]) for f in failed] == [
        ("dead/gpt-4o-mini", 502),
        ("openai/gpt-4o-mini", 500),
    ]


async def test_a_budget_reserves_for_the_dearest_candidate_and_settles_the_real_cost(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    gw = await start_gateway(config=cfg)
    # $0.01: enough for gpt-4o-mini's worst case at max_tokens=100, not for Sonnet's
    # 15 $/M output... but Sonnet's worst case at 100 tokens is 0.0015 $: fits too.
    key = await gw.key(limits=Limits(budget_nusd=10_000_000))
    limiter = gw.gw.limiter
    fake_openai.then(Fail(500))
    async with gw.openai(key) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="smart",
            messages=HI,
            max_tokens=100,  # type: ignore[arg-type]
        )
    assert raw.headers["x-aigw-provider"] == "anthropic"
    [row] = await ledger(gw)
    spend = next(s for (scope, _), s in limiter.spend.items() if scope == "key")
    assert spend.reserved == 0  # the reservation was given back
    assert sum(spend.days.values()) == row["cost_nusd"]
    sonnet = gw.gw.prices.cost_nusd("anthropic", "claude-sonnet-4-6", _fake_usage())
    assert row["cost_nusd"] == sonnet


async def test_models_list_shows_routes_prices_and_live_breakers(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
    isolated_home: Path,
) -> None:
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("dead", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-6")],
    )
    cfg.routing.breaker_failures = 1
    cfg.providers["anthropic"].region = "eu"
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    await ask(gw, key, "openai", False)  # opens the dead target's breaker
    await asyncio.to_thread(save, cfg, isolated_home / "config.toml")
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["models", "list", "--json", "--url", gw.url]
    )
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.output)
    assert out["server"] is True
    [route] = out["routes"]
    assert route["name"] == "smart" and route["strategy"] == "failover"
    dead, claude = route["targets"]
    assert dead["health"]["state"] == "open"
    assert claude["health"]["state"] == "closed"
    assert dead["input_usd_per_mtok"] == "0.15" and claude["output_usd_per_mtok"] == "15.00"
    assert (dead["region"], claude["region"]) == (None, "eu")
    # Without a server the health is unknown, the rest is the same.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["models", "list", "--url", f"http://127.0.0.1:{dead_port()}"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0 and "no server" in result.output


async def test_gemini_embeddings_fail_over_like_any_call(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    keys: None,
) -> None:
    """embedContent walks the attempts too: a 503 from Gemini moves to the OpenAI
    target, translated there, and the client never hears of it."""
    cfg = config(
        fake_openai,
        fake_anthropic,
        fake_gemini,
        [("gemini", "gemini-embedding-001"), ("openai", "text-embedding-3-small")],
    )
    gw = await start_gateway(config=cfg)
    key = await gw.key()
    fake_gemini.then(Fail(503))
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    ).aio
    answer = await client.models.embed_content(model="smart", contents=["a", "b"])
    assert len(answer.embeddings or []) == 2
    assert fake_openai.last.path == "/v1/embeddings"
    [row] = await ledger(gw)
    assert (row["status"], row["provider"], row["attempts"]) == (200, "openai", 2)
    [failed] = orjson.loads(row["routing"])["failed"]
    assert failed["target"] == "gemini/gemini-embedding-001" and failed["status"] == 503
