"""The response cache: hits replayed as JSON and as streams in the client's format,
keys, TTLs, eviction, corruption, partitions, per-request headers, coalescing, the
ledger rows of hits, restarts and the CLI. Official SDKs against the fake providers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from typer.testing import CliRunner

from aigw.app import create_app
from aigw.cache.key import cache_key, deterministic, replayable
from aigw.cache.store import CACHE, ResponseCache
from aigw.cli import app as cli_app
from aigw.config import Config, ModelConfig
from aigw.model import Limits
from aigw.pipeline import PIPELINES
from aigw.pipeline.cache import CacheStep
from aigw.store.postgres import PostgresStore
from aigw.usage import Usage
from tests.conftest import RunningGateway, StartGateway, listening, provider_config
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import DieMidStream, Fail, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "What is the capital of France?"}]
TEXT = "Paris is the capital of France."


@pytest.fixture(autouse=True)
def upstream_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")


def cache_config(mode: str = "all", **kw: Any) -> Config:
    cfg = Config()
    cfg.routing.max_attempts = 1
    cfg.cache.mode = mode
    for k, v in kw.items():
        setattr(cfg.cache, k, v)
    return cfg


async def start(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic | None = None,
    mode: str = "all",
    **kw: Any,
) -> RunningGateway:
    providers = {"openai": ("openai", fake_openai.base_url + "/v1")}
    models = {"m-openai": ("openai", "gpt-4o-mini")}
    if fake_anthropic is not None:
        providers["anthropic"] = ("anthropic", fake_anthropic.base_url)
        models["m-anthropic"] = ("anthropic", "claude-sonnet-4-6")
    return await start_gateway(providers=providers, models=models, config=cache_config(mode, **kw))


def step(gw: RunningGateway) -> CacheStep:
    last = gw.app[PIPELINES].proxy.steps[-1]
    assert isinstance(last, CacheStep)
    return last


def cache(gw: RunningGateway) -> ResponseCache:
    return gw.app[CACHE]


async def rows_of(gw: RunningGateway, request_id: str) -> list[Any]:
    rows = await gw.gw.store.reports.by_request_id(request_id)
    assert len(rows) == 1
    return rows


async def chat(
    client: openai.AsyncOpenAI, *, stream: bool = False, model: str = "m-openai", **kw: Any
) -> tuple[str, dict[str, str]]:
    """(text, response headers) of one chat call, streamed or not."""
    if stream:
        async with client.chat.completions.with_streaming_response.create(
            model=model,
            messages=HI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            **kw,
        ) as raw:
            parts = []
            async for chunk in await raw.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
            return "".join(parts), dict(raw.headers)
    raw = await client.chat.completions.with_raw_response.create(
        model=model,
        messages=HI,  # type: ignore[arg-type]
        **kw,
    )
    completion = raw.parse()
    return completion.choices[0].message.content or "", dict(raw.headers)


# -- hits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"), [(False, False), (True, True), (True, False), (False, True)]
)
async def test_openai_hit_across_stream_and_plain(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, first: bool, second: bool
) -> None:
    gw = await start(start_gateway, fake_openai)
    fake_openai.default = Reply(text=TEXT, usage=Usage(1000, 500))
    key = await gw.key()
    async with gw.openai(key) as client:
        text1, h1 = await chat(client, stream=first)
        text2, h2 = await chat(client, stream=second)
    assert (text1, text2) == (TEXT, TEXT)
    assert (h1["x-aigw-cache"], h2["x-aigw-cache"]) == ("miss", "hit")
    assert len(fake_openai.requests) == 1
    [miss] = await rows_of(gw, h1["x-request-id"])
    [hit] = await rows_of(gw, h2["x-request-id"])
    assert miss.cache == "miss" and miss.cost_nusd and miss.cost_nusd > 0
    assert (hit.cache, hit.cost_nusd, hit.saved_nusd) == ("hit", 0, miss.cost_nusd)
    assert hit.status == 200 and hit.stream is second
    if not second:  # a stream carries its cost in an SSE comment
        assert h2["x-aigw-cost-usd"] == "0.000000000"


async def test_stream_hit_carries_usage_and_finish(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    fake_openai.default = Reply(text=TEXT, usage=Usage(21, 8))
    key = await gw.key()
    async with gw.openai(key) as client:
        await chat(client)
        stream = await client.chat.completions.create(
            model="m-openai",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (21, 8)


async def test_tool_calls_replayed(start_gateway: StartGateway, fake_openai: FakeOpenAI) -> None:
    gw = await start(start_gateway, fake_openai)
    fake_openai.default = Reply(tool_calls=[("get_weather", {"city": "Paris"})])
    key = await gw.key()
    async with gw.openai(key) as client:
        stream = await client.chat.completions.create(
            model="m-openai",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
        )
        async for _ in stream:
            pass
        raw = await client.chat.completions.with_raw_response.create(
            model="m-openai",
            messages=HI,  # type: ignore[arg-type]
        )
    assert raw.headers["x-aigw-cache"] == "hit"
    msg = raw.parse().choices[0]
    assert msg.finish_reason == "tool_calls"
    assert msg.message.tool_calls is not None
    fn = msg.message.tool_calls[0].function  # type: ignore[union-attr]
    assert (fn.name, orjson.loads(fn.arguments)) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(("first", "second"), [(False, True), (True, False), (True, True)])
async def test_anthropic_hit_json_and_stream(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    first: bool,
    second: bool,
) -> None:
    gw = await start(start_gateway, fake_openai, fake_anthropic)
    fake_anthropic.default = Reply(text=TEXT)
    key = await gw.key()
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)

    async def ask(stream: bool) -> tuple[str, str]:
        if stream:
            async with client.messages.stream(
                model="m-anthropic",
                max_tokens=100,
                messages=HI,  # type: ignore[arg-type]
            ) as s:
                text = await s.get_final_text()
                return text, s.response.headers["x-aigw-cache"]
        raw = await client.messages.with_raw_response.create(
            model="m-anthropic",
            max_tokens=100,
            messages=HI,  # type: ignore[arg-type]
        )
        msg = await raw.parse()
        assert msg.stop_reason == "end_turn"
        return msg.content[0].text, raw.headers["x-aigw-cache"]  # type: ignore[union-attr]

    assert await ask(first) == (TEXT, "miss")
    assert await ask(second) == (TEXT, "hit")
    assert len(fake_anthropic.requests) == 1
    await client.close()


async def test_openai_answer_never_serves_an_anthropic_request(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    """Partitioned by client API: the same route and question via the Anthropic API
    is a separate entry (see aigw.cache.key)."""
    gw = await start(start_gateway, fake_openai, fake_anthropic)
    key = await gw.key()
    async with gw.openai(key) as client:
        await chat(client, max_tokens=100)
    client2 = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)
    raw = await client2.messages.with_raw_response.create(
        model="m-openai",
        max_tokens=100,
        messages=HI,  # type: ignore[arg-type]
    )
    assert raw.headers["x-aigw-cache"] == "miss"
    assert len(fake_openai.requests) == 2
    await client2.close()


async def test_key_ignores_json_key_order_and_whitespace(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    one = b'{"model":"m-openai","messages":[{"role":"user","content":"hi"}],"temperature":0}'
    two = (
        b'{ "temperature" : 0,\n  "messages" : [ {"content": "hi", "role": "user"} ],\n'
        b' "model": "m-openai" }'
    )
    other = b'{"model":"m-openai","messages":[{"role":"user","content":"hi!"}],"temperature":0}'
    async with aiohttp.ClientSession() as s:
        seen = []
        for body in (one, two, other):
            async with s.post(gw.url + "/v1/chat/completions", data=body, headers=headers) as r:
                assert r.status == 200
                seen.append(r.headers["x-aigw-cache"])
    assert seen == ["miss", "hit", "miss"]
    assert len(fake_openai.requests) == 2


# -- modes and headers ------------------------------------------------------------------


async def test_deterministic_mode_caches_only_temperature_zero_or_seed(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai, mode="deterministic")
    key = await gw.key()
    async with gw.openai(key) as client:
        got = [
            (await chat(client, temperature=0.7))[1]["x-aigw-cache"],
            (await chat(client, temperature=0.7))[1]["x-aigw-cache"],
            (await chat(client, temperature=0))[1]["x-aigw-cache"],
            (await chat(client, temperature=0))[1]["x-aigw-cache"],
            (await chat(client, seed=7, temperature=1))[1]["x-aigw-cache"],
            (await chat(client, seed=7, temperature=1))[1]["x-aigw-cache"],
        ]
    assert got == ["bypass", "bypass", "miss", "hit", "miss", "hit"]
    assert len(fake_openai.requests) == 4


async def test_off_by_default_no_header(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai, mode="off")
    key = await gw.key()
    async with gw.openai(key) as client:
        _, h1 = await chat(client, temperature=0)
        _, h2 = await chat(client, temperature=0)
    assert "x-aigw-cache" not in h1 and "x-aigw-cache" not in h2
    assert len(fake_openai.requests) == 2
    [row] = await rows_of(gw, h2["x-request-id"])
    assert row.cache is None


async def test_team_and_key_modes_narrowest_wins(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai, mode="off")
    await gw.gw.store.teams.create("cached", Limits(cache="all", cache_ttl=60))
    on = await gw.key(team="cached")
    off = await gw.key(team="cached", limits=Limits(cache="off"))
    lone = await gw.key(team="plain", limits=Limits(cache="deterministic"))
    await gw.gw.directory.refresh()
    async with gw.openai(on) as a, gw.openai(off) as b, gw.openai(lone) as c:
        assert [(await chat(a))[1]["x-aigw-cache"] for _ in range(2)] == ["miss", "hit"]
        assert ["x-aigw-cache" in (await chat(b))[1] for _ in range(2)] == [False, False]
        assert [(await chat(c))[1]["x-aigw-cache"] for _ in range(1)] == ["bypass"]
    entry = next(iter(cache(gw).front.values()))
    assert entry.expires - entry.created == 60


async def test_no_cache_refreshes_and_no_store_keeps_out(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    fake_openai.then(Reply(text="old"), Reply(text="new"), Reply(text="unstored"))
    async with gw.openai(key) as client:
        assert (await chat(client))[0] == "old"
        text, h = await chat(client, extra_headers={"Cache-Control": "no-cache"})
        assert (text, h["x-aigw-cache"]) == ("new", "bypass")
        text, h = await chat(client)
        assert (text, h["x-aigw-cache"]) == ("new", "hit")  # refreshed
        text, h = await chat(client, temperature=0, extra_headers={"Cache-Control": "no-store"})
        assert (text, h["x-aigw-cache"]) == ("unstored", "miss")
        _, h = await chat(client, temperature=0)
        assert h["x-aigw-cache"] == "miss"
    assert len(fake_openai.requests) == 4


async def test_a_cache_ttl_of_non_ascii_digits_is_a_400_not_a_crash(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    """'²' is a digit to str.isdigit() but not to int(): refused at entry."""
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        for value in ("\u00b2", "\u0663", "1\u00b2"):
            async with http.post(
                gw.url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}", "x-aigw-cache-ttl": value},
            ) as resp:
                assert resp.status == 400, value
                assert (await resp.json())["error"]["code"] == "invalid_cache_ttl"


async def test_cache_ttl_header(start_gateway: StartGateway, fake_openai: FakeOpenAI) -> None:
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    async with gw.openai(key) as client:
        _, h = await chat(client, extra_headers={"x-aigw-cache-ttl": "0"})
        assert h["x-aigw-cache"] == "miss"
        _, h = await chat(client, extra_headers={"x-aigw-cache-ttl": "5"})
        assert h["x-aigw-cache"] == "miss"  # ttl 0 kept nothing
        with pytest.raises(openai.BadRequestError) as err:
            await chat(client, extra_headers={"x-aigw-cache-ttl": "soon"})
    assert err.value.code == "invalid_cache_ttl"
    entry = next(iter(cache(gw).front.values()))
    assert entry.expires - entry.created == 5


async def test_ttl_expiry_with_an_injected_clock(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai, ttl=3600)
    now = [1_000_000.0]
    cache(gw).clock = lambda: now[0]
    key = await gw.key()
    async with gw.openai(key) as client:
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
        now[0] += 3599
        assert (await chat(client))[1]["x-aigw-cache"] == "hit"
        now[0] += 2
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
        await cache(gw).flush()
        cache(gw).front.clear()  # from the table this time
        assert (await chat(client))[1]["x-aigw-cache"] == "hit"
        now[0] += 3601
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
    assert len(fake_openai.requests) == 3


async def test_team_partition_and_shared(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    a, b = await gw.key(team="a"), await gw.key(team="b")
    async with gw.openai(a) as ca, gw.openai(b) as cb:
        assert (await chat(ca))[1]["x-aigw-cache"] == "miss"
        assert (await chat(cb))[1]["x-aigw-cache"] == "miss"
        assert (await chat(cb))[1]["x-aigw-cache"] == "hit"
    assert len(fake_openai.requests) == 2


async def test_shared_across_teams(start_gateway: StartGateway, fake_openai: FakeOpenAI) -> None:
    gw = await start(start_gateway, fake_openai, shared=True)
    a, b = await gw.key(team="a"), await gw.key(team="b")
    async with gw.openai(a) as ca, gw.openai(b) as cb:
        assert (await chat(ca))[1]["x-aigw-cache"] == "miss"
        assert (await chat(cb))[1]["x-aigw-cache"] == "hit"
    assert len(fake_openai.requests) == 1


async def test_embeddings_cached(start_gateway: StartGateway, fake_openai: FakeOpenAI) -> None:
    gw = await start(start_gateway, fake_openai, mode="deterministic")
    key = await gw.key()
    async with gw.openai(key) as client:
        got = []
        for _ in range(2):
            raw = await client.embeddings.with_raw_response.create(model="m-openai", input="hello")
            got.append((raw.headers["x-aigw-cache"], raw.parse().data[0].embedding))
    assert [g[0] for g in got] == ["miss", "hit"]
    assert got[0][1] == got[1][1]
    assert len(fake_openai.requests) == 1


# -- size, corruption, restarts ----------------------------------------------------------


async def test_lru_eviction_under_max_size(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai, max_size=4096)
    key = await gw.key()
    c = cache(gw)
    async with gw.openai(key) as client:
        for i in range(8):
            _, h = await chat(client, temperature=0, seed=i)
            assert h["x-aigw-cache"] == "miss"
            # The first answer stays the most recently used one.
            assert (await chat(client, temperature=0, seed=0))[1]["x-aigw-cache"] == "hit"
            await c.flush()
        assert c.front_bytes <= 4096
        assert await c.table.total_size() <= 4096  # type: ignore[union-attr]
        c.front.clear()
        assert (await chat(client, temperature=0, seed=0))[1]["x-aigw-cache"] == "hit"
        assert (await chat(client, temperature=0, seed=1))[1]["x-aigw-cache"] == "miss"


async def _corrupt(gw: RunningGateway, sql: str, postgres: str = "") -> None:
    """Run ``sql`` (on PostgreSQL: ``postgres``, when its spelling differs) on the
    gateway's database behind its back, as another program would."""
    store = gw.gw.store
    if isinstance(store, PostgresStore):
        await store.db.execute(postgres or sql)
        return
    conn = sqlite3.connect(gw.state_file)
    with conn:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE response_cache SET body = x'00ff00'",
        "UPDATE response_cache SET usage = 'not json'",
        "DROP TABLE response_cache",
    ],
)
async def test_corrupt_cache_table_is_bypassed(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    fake_openai.default = Reply(text=TEXT)
    c = cache(gw)
    async with gw.openai(key) as client:
        await chat(client)
        await c.flush()
        c.front.clear()
        await _corrupt(gw, damage, damage.replace("x'00ff00'", "'\\x00ff00'::bytea"))
        text, h = await chat(client)
        assert (text, h["x-aigw-cache"]) == (TEXT, "bypass")
        await c.flush()  # writing fails for a dropped table: logged, not raised
        text, h = await chat(client)
        assert text == TEXT and h["x-aigw-cache"] in ("hit", "bypass")
    assert "response cache" in caplog.text


async def test_survives_a_restart(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    cfg = cache_config()
    cfg.providers["openai"] = provider_config("openai", "openai", fake_openai.base_url + "/v1")
    cfg.models["m-openai"] = ModelConfig("m-openai", "openai", "gpt-4o-mini")
    state = tmp_path / "state.db"
    server = await listening(create_app(cfg, state))
    gw = RunningGateway(server.app, server.runner, server.port, state)
    key = await gw.key()
    fake_openai.default = Reply(text=TEXT)
    async with gw.openai(key) as client:
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
    await server.runner.cleanup()  # drains the cache writer
    server = await listening(create_app(cfg, state))
    gw = RunningGateway(server.app, server.runner, server.port, state)
    try:
        async with gw.openai(key) as client:
            text, h = await chat(client, stream=True)
        assert (text, h["x-aigw-cache"]) == (TEXT, "hit")
        assert len(fake_openai.requests) == 1
    finally:
        await server.runner.cleanup()


# -- coalescing -------------------------------------------------------------------------


async def _until(cond: Callable[[], bool]) -> None:
    """Wait until ``cond()`` holds (polled each loop turn, bounded)."""
    async with asyncio.timeout(5):
        while not cond():  # noqa: ASYNC110 - polling server-side state
            await asyncio.sleep(0.005)


async def test_concurrent_misses_coalesce_streams_included(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    gate = asyncio.Event()
    fake_openai.then(Reply(text=TEXT, gate=gate))
    key = await gw.key()
    s = step(gw)
    async with gw.openai(key) as client:
        calls: list[Awaitable[tuple[str, dict[str, str]]]] = [
            chat(client, stream=True),
            chat(client),
            chat(client, stream=True),
            chat(client),
        ]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await _until(lambda: len(fake_openai.requests) == 1 and s.waiting == 3)
        gate.set()
        results = await asyncio.gather(*tasks)
    assert [r[0] for r in results] == [TEXT] * 4
    assert sorted(r[1]["x-aigw-cache"] for r in results) == ["hit", "hit", "hit", "miss"]
    assert len(fake_openai.requests) == 1
    rows = [(await rows_of(gw, r[1]["x-request-id"]))[0] for r in results]
    assert sum(r.cost_nusd or 0 for r in rows) == max(r.cost_nusd or 0 for r in rows)


async def test_a_failed_leader_is_not_cached_and_waiters_retry(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    gate = asyncio.Event()
    fake_openai.then(Fail(500, "boom", gate=gate), Reply(text=TEXT))
    key = await gw.key()
    s = step(gw)
    async with gw.openai(key) as client:
        leader = asyncio.ensure_future(chat(client))
        await _until(lambda: len(fake_openai.requests) == 1)
        waiters = [asyncio.ensure_future(chat(client, stream=i == 0)) for i in range(2)]
        await _until(lambda: s.waiting == 2)
        gate.set()
        with pytest.raises(openai.InternalServerError):
            await leader
        results = await asyncio.gather(*waiters)
    assert [r[0] for r in results] == [TEXT, TEXT]
    assert sorted(r[1]["x-aigw-cache"] for r in results) == ["hit", "miss"]
    assert len(fake_openai.requests) == 2  # the failure once, then one call for both


# -- CLI -------------------------------------------------------------------------------


async def test_cli_stats_and_clear(isolated_home: Path, fake_openai: FakeOpenAI) -> None:
    cfg = cache_config()
    cfg.providers["openai"] = provider_config("openai", "openai", fake_openai.base_url + "/v1")
    cfg.models["m-openai"] = ModelConfig("m-openai", "openai", "gpt-4o-mini")
    state = isolated_home / "state.db"  # where the CLI looks
    server = await listening(create_app(cfg, state))
    gw = RunningGateway(server.app, server.runner, server.port, state)
    try:
        await _cli_stats_and_clear(gw)
    finally:
        await server.runner.cleanup()


async def _cli_stats_and_clear(gw: RunningGateway) -> None:
    key_a, key_b = await gw.key(team="team-a"), await gw.key(team="team-b")
    async with gw.openai(key_a) as a, gw.openai(key_b) as b:
        await chat(a)
        await chat(a)
        await chat(b)
    await cache(gw).flush()
    runner = CliRunner()
    env: dict[str, str] = {}
    res = await asyncio.to_thread(runner.invoke, cli_app, ["cache", "stats", "--json"], env=env)
    assert res.exit_code == 0, res.output
    stats = orjson.loads(res.output)
    assert (stats["entries"], stats["hits"]) == (2, 1)
    assert stats["saved_nusd"] > 0
    by_team = {r["team"]: r for r in stats["by_team_model"]}
    assert by_team["team-a"]["hits"] == 1 and by_team["team-b"]["hits"] == 0
    res = await asyncio.to_thread(runner.invoke, cli_app, ["cache", "stats"], env=env)
    assert res.exit_code == 0 and "team-a" in res.output
    res = await asyncio.to_thread(
        runner.invoke, cli_app, ["cache", "clear", "--team", "team-a", "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.output)["deleted"] == 1
    await cache(gw).flush()  # what the server's background task does each second
    async with gw.openai(key_a) as a, gw.openai(key_b) as b:
        assert (await chat(a))[1]["x-aigw-cache"] == "miss"
        assert (await chat(b))[1]["x-aigw-cache"] == "hit"
    res = await asyncio.to_thread(runner.invoke, cli_app, ["cache", "clear"], env=env)
    assert res.exit_code == 0 and "deleted 2" in res.output


async def test_cli_cache_options_on_teams_and_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    res = await asyncio.to_thread(
        runner.invoke,
        cli_app,
        ["teams", "create", "t", "--cache", "all", "--cache-ttl", "2h", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = orjson.loads(res.output)
    assert (out["cache"], out["cache_ttl"]) == ("all", 7200)
    res = await asyncio.to_thread(
        runner.invoke, cli_app, ["teams", "update", "t", "--cache", "sometimes"]
    )
    assert res.exit_code != 0 and "--cache" in res.output
    res = await asyncio.to_thread(
        runner.invoke, cli_app, ["keys", "create", "--team", "t", "--cache", "off", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.output)["limits"]["cache"] == "off"
    res = await asyncio.to_thread(
        runner.invoke, cli_app, ["teams", "update", "t", "--cache-ttl", "soon"]
    )
    assert res.exit_code != 0 and "--cache-ttl" in res.output


# -- Gemini -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_gemini_hit_plain_then_stream(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """google-genai: a deterministic call answered by an OpenAI target, then the same
    call streamed: replayed as Gemini's SSE stream from the cache."""
    from google import genai
    from google.genai import types

    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")
    gw = await start(start_gateway, fake_openai, mode="deterministic")
    fake_openai.default = Reply(text=TEXT)
    key = await gw.key()
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    ).aio
    config = types.GenerateContentConfig(temperature=0)
    try:
        first = await client.models.generate_content(
            model="m-openai", contents="What is the capital of France?", config=config
        )
        assert first.text == TEXT
        assert first.sdk_http_response is not None
        assert (first.sdk_http_response.headers or {}).get("x-aigw-cache") == "miss"
        parts = [
            chunk.text or ""
            async for chunk in await client.models.generate_content_stream(
                model="m-openai", contents="What is the capital of France?", config=config
            )
        ]
        assert "".join(parts) == TEXT
    finally:
        await client.aclose()
    assert len(fake_openai.requests) == 1
    rows = await gw.fetchall("SELECT cache, stream FROM ledger ORDER BY id")
    assert [(r["cache"], r["stream"]) for r in rows] == [("miss", 0), ("hit", 1)]


async def test_a_broken_stream_is_not_stored(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    fake_openai.then(DieMidStream(after=2), Reply(text=TEXT))
    key = await gw.key()
    async with gw.openai(key) as client:
        with pytest.raises(openai.APIError):
            await chat(client, stream=True)
        text, h = await chat(client)
        assert (text, h["x-aigw-cache"]) == (TEXT, "miss")
        text, h = await chat(client, stream=True)
        assert (text, h["x-aigw-cache"]) == (TEXT, "hit")
    assert len(fake_openai.requests) == 2


def test_keys_and_policies() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "temperature": 0, "model": "m"}
    same = {"model": "m", "temperature": 0, "messages": [{"content": "x", "role": "user"}]}
    streamed = {**same, "stream": True, "stream_options": {"include_usage": True}}
    k = cache_key("t", "chat.completions", "m", body)
    assert k == cache_key("t", "chat.completions", "m", same)
    assert k == cache_key("t", "chat.completions", "m", streamed)
    assert k != cache_key("u", "chat.completions", "m", body)
    assert k != cache_key("t", "messages", "m", body)
    assert k != cache_key("t", "chat.completions", "m", {**body, "temperature": 0.1})
    assert deterministic("chat.completions", {"seed": 3})
    assert not deterministic("chat.completions", {"temperature": 1})
    assert not deterministic("chat.completions", {})
    assert not deterministic("messages", {"temperature": False})
    assert deterministic("generateContent", {"generationConfig": {"temperature": 0.0}})
    assert not deterministic("generateContent", {"generationConfig": "x"})
    assert deterministic("embeddings", {})
    assert not replayable("messages", {"thinking": {"type": "enabled", "budget_tokens": 9}})
    assert replayable("messages", {"thinking": {"type": "disabled"}})


async def test_a_table_that_refuses_writes_is_logged_not_fatal(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes to the cache table fail (as on a full disk): answers still go out, the
    failure is logged, memory still serves, and nothing else breaks."""
    gw = await start(start_gateway, fake_openai)
    await _corrupt(
        gw,
        "CREATE TRIGGER full BEFORE INSERT ON response_cache "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$; "
        "CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON response_cache "
        "FOR EACH ROW EXECUTE FUNCTION full_disk()",
    )
    key = await gw.key()
    c = cache(gw)
    async with gw.openai(key) as client:
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
        await c.flush()
        assert "response cache: writing answers failed" in caplog.text
        assert (await chat(client))[1]["x-aigw-cache"] == "hit"  # from memory
        c.front.clear()
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
    assert len(fake_openai.requests) == 2


async def test_flush_waits_for_a_batch_already_being_written(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    """`flush` returns only once what was queued before it is in the table, even when the
    background writer took that batch first and is still writing it."""
    gw = await start(start_gateway, fake_openai)
    store = cache(gw)
    assert store.table is not None
    table = store.table
    writing, release = asyncio.Event(), asyncio.Event()
    real_put_many = table.put_many

    async def slow_put_many(*args: Any) -> None:
        writing.set()
        await release.wait()
        await real_put_many(*args)

    table.put_many = slow_put_many  # type: ignore[method-assign,assignment]
    async with gw.openai(await gw.key()) as client:
        assert (await chat(client))[1]["x-aigw-cache"] == "miss"
    await writing.wait()  # the background writer holds the batch now
    second = asyncio.create_task(store.flush())
    try:
        # Held while the batch is unwritten (a bound on the wait only: with the lock
        # the flush cannot finish before `release`, however long this waits).
        done, _ = await asyncio.wait({second}, timeout=0.5)
        assert not done
    finally:
        release.set()  # never leave the writer blocked (the shutdown waits for it)
    await second
    store.front.clear()
    async with gw.openai(await gw.key()) as client:
        assert (await chat(client))[1]["x-aigw-cache"] == "hit"
