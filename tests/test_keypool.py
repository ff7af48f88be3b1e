"""Key pools: several keys per provider, spread over, stepped past on 401/403/429.

Through the real server and the official SDKs against fake providers that reject one
key: the client never sees the rejection, and no key reaches a response, a log record,
the ledger or the state file.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from typer.testing import CliRunner

from aigw import secrets
from aigw.cli import app as cli_app
from aigw.config import UpstreamConfig, save
from aigw.providers.keypool import AUTH_BENCH, LocalKeyPool, bench_seconds
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.keys import KeyGate, anthropic_401, openai_401, openai_429
from tests.fakes.openai import FakeOpenAI

# Not shaped like sk-... keys: only the pool, not the key-shape pattern, can redact them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

BAD, GOOD, THIRD = "bad-key-0000000001", "good-key-000000002", "third-key-00000003"

# The background model-list fetch would reach the key gate too: these tests count calls.
NO_LISTING = UpstreamConfig(models_refresh=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the pool itself -----------------------------------------------------------------


async def test_round_robin_spreads_calls_over_every_key() -> None:
    pool = LocalKeyPool("p", ["a", "b", "c"])
    firsts = [(await pool.order())[0] for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert list(await pool.order()) == ["a", "b", "c"]  # the rest follow, to step onto


async def test_a_rejected_key_is_benched_then_back() -> None:
    clock = Clock()
    pool = LocalKeyPool("p", ["a", "b"], clock=clock)
    await pool.failed("a", 401, None)
    assert [(await pool.order())[0] for _ in range(4)] == ["b"] * 4
    health = await pool.health()
    assert health[0].available is False and health[0].last_status == 401
    assert health[0].benched_for == AUTH_BENCH and health[1].available
    clock.now += AUTH_BENCH
    assert set(await pool.order()) == {"a", "b"}


async def test_a_rate_limited_key_rests_for_its_retry_after() -> None:
    clock = Clock()
    pool = LocalKeyPool("p", ["a", "b"], clock=clock)
    await pool.failed("a", 429, "7")
    clock.now += 6.9
    assert list(await pool.order()) == ["b"]
    clock.now += 0.1
    assert "a" in await pool.order()


async def test_when_every_key_is_benched_the_first_back_is_tried() -> None:
    clock = Clock()
    pool = LocalKeyPool("p", ["a", "b"], clock=clock)
    await pool.failed("a", 401, None)
    await pool.failed("b", 429, "5")
    assert list(await pool.order()) == ["b"]


async def test_a_lone_key_is_never_benched() -> None:
    pool = LocalKeyPool("p", ["a"])
    await pool.failed("a", 401, None)
    assert list(await pool.order()) == ["a"]


def test_bench_times() -> None:
    assert bench_seconds(401, None) == AUTH_BENCH == bench_seconds(403, "9")
    assert bench_seconds(429, "12") == 12
    assert bench_seconds(429, "99999999") == 3600  # capped
    assert bench_seconds(429, "soon") == 10  # unreadable: the default
    assert 25 <= bench_seconds(429, formatdate(__import__("time").time() + 30, usegmt=True)) <= 31


def test_the_pool_never_shows_its_keys() -> None:
    pool = LocalKeyPool("p", [BAD, GOOD])
    assert BAD not in repr(pool) and GOOD not in repr(pool)


def test_env_and_keyring_hold_comma_separated_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", f" {BAD}, {GOOD},,{BAD}\n")
    assert secrets.lookup_keys("openai") == ([BAD, GOOD], "env AIGW_OPENAI_API_KEY")
    assert secrets.add("claude", BAD) == 1
    assert secrets.add("claude", GOOD) == 2
    assert secrets.add("claude", GOOD) == 2  # already there
    assert secrets.lookup_keys("claude") == ([BAD, GOOD], "keyring")


# -- through the server --------------------------------------------------------------


@pytest.fixture
async def gated_openai() -> AsyncIterator[tuple[FakeOpenAI, KeyGate]]:
    fake = FakeOpenAI()
    gate = KeyGate(fake)
    await fake.start()
    yield fake, gate
    await fake.close()


def no_key_in(text: str | bytes, *keys: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for key in keys:
        assert key.encode() not in data, f"key {key[:8]}... leaked"


def state_bytes(gw: RunningGateway) -> bytes:
    return b"".join(
        p.read_bytes() for p in (gw.state_file, Path(f"{gw.state_file}-wal")) if p.exists()
    )


async def test_openai_client_never_sees_the_401_of_one_key(
    start_gateway: StartGateway,
    gated_openai: tuple[FakeOpenAI, KeyGate],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, gate = gated_openai
    gate.answer(BAD, openai_401(BAD))
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", f"{BAD},{GOOD}")
    caplog.set_level(logging.DEBUG)
    gw = await start_gateway(
        upstream=NO_LISTING, providers={"openai": ("openai", fake.base_url + "/v1")}
    )
    key = await gw.key()
    async with gw.openai(key) as client:
        for i in range(4):
            raw = await client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": f"hi {i}"}],
                stream=i % 2 == 1,
            )
            assert raw.http_response.status_code == 200
            no_key_in(str(dict(raw.headers)), BAD, GOOD)
            if i % 2:
                async for chunk in raw.parse():  # type: ignore[union-attr]
                    no_key_in(chunk.model_dump_json(), BAD, GOOD)
            else:
                no_key_in(raw.parse().model_dump_json(), BAD, GOOD)
    # The bad key was tried once, then rested; every call was answered with the good one.
    assert gate.seen.count(BAD) == 1 and gate.seen.count(GOOD) == 4
    rows = await gw.fetchall("SELECT status, error FROM ledger")
    assert [tuple(r) for r in rows] == [(200, None)] * 4
    assert any("key 1 of 2 got 401" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        no_key_in(record.getMessage(), BAD, GOOD)
    no_key_in(state_bytes(gw), BAD, GOOD)
    # /readyz shows each key of the pool by position: the first benched for its 401.
    async with aiohttp.ClientSession(gw.url) as http, http.get("/readyz") as ready:
        text = await ready.text()
    no_key_in(text, BAD, GOOD)
    keys = json.loads(text)["providers"]["openai"]["keys"]
    assert [(k["index"], k["available"], k["last_status"]) for k in keys] == [
        (1, False, 401),
        (2, True, None),
    ]


async def test_models_list_shows_how_many_pooled_keys_are_available(
    start_gateway: StartGateway,
    gated_openai: tuple[FakeOpenAI, KeyGate],
    monkeypatch: pytest.MonkeyPatch,
    isolated_home: Path,
) -> None:
    fake, gate = gated_openai
    gate.answer(BAD, openai_401(BAD))
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", f"{BAD},{GOOD},{THIRD}")
    gw = await start_gateway(
        upstream=NO_LISTING,
        providers={"openai": ("openai", fake.base_url + "/v1")},
        models={"mini": ("openai", "gpt-4o-mini")},
    )
    key = await gw.key()
    async with gw.openai(key) as client:
        for i in range(3):  # round robin: one of them meets the bad key and benches it
            await client.chat.completions.create(
                model="mini", messages=[{"role": "user", "content": f"hi {i}"}]
            )
    assert gate.seen.count(BAD) == 1
    save(gw.gw.config, isolated_home / "config.toml")
    # In a thread: the CLI asks the server, which answers on this test's loop.
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli_app, ["models", "list", "--json", "--url", gw.url]
    )
    assert result.exit_code == 0, result.output
    no_key_in(result.output, BAD, GOOD, THIRD)
    [target] = json.loads(result.output)["routes"][0]["targets"]
    assert target["keys"] == {"available": 2, "total": 3}
    result = await asyncio.to_thread(
        runner.invoke, cli_app, ["models", "list", "--url", gw.url], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0 and "keys 2/3" in result.output, result.output


async def test_a_rate_limited_key_hands_the_same_request_to_the_next(
    start_gateway: StartGateway,
    gated_openai: tuple[FakeOpenAI, KeyGate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, gate = gated_openai
    gate.answer(GOOD, openai_429(GOOD, "30"))
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", f"{GOOD},{THIRD}")
    gw = await start_gateway(
        upstream=NO_LISTING, providers={"openai": ("openai", fake.base_url + "/v1")}
    )
    async with gw.openai(await gw.key()) as client:
        for _ in range(3):
            reply = await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
    assert gate.seen == [GOOD, THIRD, THIRD, THIRD]
    health = await gw.gw.providers["openai"].keys.health()
    assert [(h.index, h.available, h.last_status) for h in health] == [
        (1, False, 429),
        (2, True, None),
    ]


async def test_when_every_key_fails_the_client_gets_one_redacted_error(
    start_gateway: StartGateway,
    gated_openai: tuple[FakeOpenAI, KeyGate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, gate = gated_openai
    # The last answer echoes both keys: redaction covers every key of the pool.
    gate.answer(BAD, openai_401(BAD)).answer(GOOD, openai_401(f"{GOOD} (and {BAD})"))
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", f"{BAD},{GOOD}")
    gw = await start_gateway(
        upstream=NO_LISTING, providers={"openai": ("openai", fake.base_url + "/v1")}
    )
    async with gw.openai(await gw.key()) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    err = info.value
    assert err.status_code == 502
    assert err.code == "upstream_auth_failed"
    assert "Incorrect API key provided: [redacted] (and [redacted])" in str(err)
    no_key_in(str(err), BAD, GOOD)
    assert sorted(gate.seen) == sorted([BAD, GOOD])
    rows = await gw.fetchall("SELECT status, error FROM ledger")
    assert rows[0]["status"] == 502
    no_key_in(rows[0]["error"], BAD, GOOD)
    no_key_in(state_bytes(gw), BAD, GOOD)


async def test_anthropic_client_rides_over_a_rejected_key(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAnthropic()
    gate = KeyGate(fake).answer(BAD, anthropic_401(BAD))
    await fake.start()
    try:
        monkeypatch.setenv("AIGW_CLAUDE_API_KEY", f"{BAD},{GOOD}")
        gw = await start_gateway(
            upstream=NO_LISTING, providers={"claude": ("anthropic", fake.base_url)}
        )
        key = await gw.key()
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as c:
            for _ in range(2):
                msg = await c.messages.create(
                    model="claude/claude-sonnet-4-6",
                    max_tokens=50,
                    messages=[{"role": "user", "content": "hi"}],
                )
                assert msg.content[0].type == "text"
        assert gate.seen == [BAD, GOOD, GOOD]
    finally:
        await fake.close()


async def test_gemini_bad_key_400_moves_to_the_next_key(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini answers a bad key with 400 API_KEY_INVALID, not 401: the adapter knows."""
    fake = await FakeGemini(api_key=GOOD).start()
    try:
        monkeypatch.setenv("AIGW_GEMINI_API_KEY", f"{BAD},{GOOD}")
        gw = await start_gateway(
            upstream=NO_LISTING, providers={"gemini": ("gemini", fake.base_url)}
        )
        client = genai.Client(
            api_key=await gw.key(), http_options=types.HttpOptions(base_url=gw.url)
        )
        for _ in range(2):
            reply = await client.aio.models.generate_content(
                model="gemini/gemini-2.5-flash", contents="hi"
            )
            assert reply.text
        keys = [
            r.headers.get("X-Goog-Api-Key") or r.headers.get("x-goog-api-key")
            for r in fake.requests
        ]
        assert keys == [BAD, GOOD, GOOD]  # tried once, then rested
    finally:
        await fake.close()
