"""Providers' own model lists (issue 9 item 7): GET /v1/models (and the Anthropic and
Gemini listings) show the configured aliases plus what each provider's models
endpoint returns, fetched in the background at start and refreshed; a provider that
cannot list falls back to the shipped price table, logged, with its key kept out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from aigw.config import Config, UpstreamConfig
from aigw.errors import ConfigError
from aigw.translate.common import TranslationError
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail, Hang
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

HI: Any = [{"role": "user", "content": "hi"}]

# vLLM's GET /v1/models, as its OpenAI-compatible server answers (shape of the example
# in a public vLLM deployment guide; "permission" trimmed).
VLLM_MODELS = [
    {
        "id": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "object": "model",
        "created": 1739935000,
        "owned_by": "vllm",
        "root": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "parent": None,
        "max_model_len": 32768,
    }
]
# Ollama's OpenAI-compatible GET /v1/models (its docs' "OpenAI compatibility" page).
OLLAMA_MODELS = [
    {"id": "llama3.2:latest", "object": "model", "created": 1727212356, "owned_by": "library"}
]


async def until(check: Callable[[], Awaitable[bool]], limit: float = 10.0) -> None:
    """Wait until ``check()`` holds (polling), failing after ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def ids(gw: RunningGateway) -> list[str]:
    async with gw.openai(await gw.key()) as client:
        return [m.id async for m in client.models.list()]


async def first_round(gw: RunningGateway) -> None:
    assert gw.gw.model_lists is not None
    await gw.gw.model_lists.first_round.wait()


@pytest.fixture
async def local(monkeypatch: pytest.MonkeyPatch) -> Any:
    fakes: list[FakeOpenAI] = []

    async def start(models: list[dict[str, Any]]) -> FakeOpenAI:
        fake = await FakeOpenAI(model_list=models).start()
        fakes.append(fake)
        return fake

    monkeypatch.setenv("AIGW_LOCAL_API_KEY", "local-upstream-key")
    yield start
    for fake in fakes:
        await fake.close()


async def test_a_local_openai_compatible_server_lists_its_own_models(
    start_gateway: StartGateway, local: Any
) -> None:
    vllm = await local(VLLM_MODELS)
    gw = await start_gateway(
        providers={"local": ("openai", vllm.base_url + "/v1")},
        models={"coder": ("local", "Qwen/Qwen2.5-Coder-7B-Instruct")},
    )
    await first_round(gw)
    listed = await ids(gw)
    # Its own model, not OpenAI's price table.
    assert listed == ["coder", "local/Qwen/Qwen2.5-Coder-7B-Instruct"]
    assert vllm.listings[0].path == "/v1/models"
    assert vllm.listings[0].headers["Authorization"] == "Bearer local-upstream-key"
    # And it routes as PROVIDER/MODEL, the model's own slash and all.
    async with gw.openai(await gw.key()) as client:
        await client.chat.completions.create(
            model="local/Qwen/Qwen2.5-Coder-7B-Instruct", messages=HI
        )
        card = await client.models.retrieve("local/Qwen/Qwen2.5-Coder-7B-Instruct")
    assert vllm.last.body["model"] == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert card.created == 1739935000 and card.owned_by == "local"


async def test_ollama_and_the_real_providers_each_list_their_own(
    start_gateway: StartGateway,
    local: Any,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ollama = await local(OLLAMA_MODELS)
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")
    gw = await start_gateway(
        providers={
            "local": ("openai", ollama.base_url + "/v1"),
            "openai": ("openai", fake_openai.base_url + "/v1"),
            "anthropic": ("anthropic", fake_anthropic.base_url),
            "gemini": ("gemini", fake_gemini.base_url),
            "mock": ("mock", ""),
        }
    )
    await first_round(gw)
    listed = await ids(gw)
    assert listed == [
        "anthropic/claude-opus-4-6",
        "anthropic/claude-sonnet-4-6",
        "anthropic/claude-haiku-4-5-20251001",
        "gemini/gemini-2.5-flash",
        "gemini/gemini-2.5-pro",
        "gemini/gemini-flash-latest",
        "gemini/gemini-embedding-001",  # imagen (predict only) is left out
        "local/llama3.2:latest",
        "mock/echo",
        "mock/error-429",
        "mock/error-500",
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "openai/text-embedding-3-small",
    ]
    # Each asked in its own API's way, with its own key header.
    ant = fake_anthropic.listings[0]
    assert ant.path == "/v1/models" and ant.query == {"limit": "1000"}
    assert ant.headers["x-api-key"] == "anthropic-upstream-key"
    assert ant.headers["anthropic-version"]
    gem = fake_gemini.listings[0]
    assert gem.path == "/v1beta/models" and gem.query == {"pageSize": "1000"}
    assert gem.headers["x-goog-api-key"] == "gemini-upstream-key"
    async with gw.openai(await gw.key()) as client:
        await client.chat.completions.create(model="local/llama3.2:latest", messages=HI)
    assert ollama.last.body["model"] == "llama3.2:latest"


async def test_every_page_is_fetched(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1000 a page is the most either API gives: 1001 models take two pages each."""
    many_gemini = [
        {"name": f"models/gemini-test-{i}", "supportedGenerationMethods": ["generateContent"]}
        for i in range(1001)
    ]
    many_claude = [
        {
            "type": "model",
            "id": f"claude-test-{i}",
            "display_name": f"Claude {i}",
            "created_at": "2025-01-01T00:00:00Z",
        }
        for i in range(1001)
    ]
    gem = await FakeGemini(model_list=many_gemini).start()
    ant = await FakeAnthropic(model_list=many_claude).start()
    monkeypatch.setenv("AIGW_G_API_KEY", "k")
    monkeypatch.setenv("AIGW_A_API_KEY", "k")
    try:
        gw = await start_gateway(
            providers={"g": ("gemini", gem.base_url), "a": ("anthropic", ant.base_url)}
        )
        await first_round(gw)
        assert len(gw.gw.providers["g"].models) == 1001
        assert gw.gw.providers["g"].models[-1] == "gemini-test-1000"
        assert [r.query.get("pageToken") for r in gem.listings] == [None, "MTAwMA=="]
        assert len(gw.gw.providers["a"].models) == 1001
        assert [r.query.get("after_id") for r in ant.listings] == [None, "claude-test-999"]
    finally:
        await gem.close()
        await ant.close()


async def test_a_failing_provider_falls_back_to_the_price_table_without_its_key(
    start_gateway: StartGateway, local: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await local(VLLM_MODELS)
    # OpenAI's 401 quotes the key it was given; the log must not.
    echo = (
        b'{"error": {"message": "Incorrect API key provided: local-upstream-key.",'
        b' "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}'
    )
    fake.listing_fails.append(Fail(401, body=echo))
    with caplog.at_level(logging.WARNING, logger="aigw.providers"):
        gw = await start_gateway(providers={"local": ("openai", fake.base_url + "/v1")})
        await first_round(gw)
    listed = await ids(gw)
    assert "local/Qwen/Qwen2.5-Coder-7B-Instruct" not in listed
    assert "local/gpt-4o-mini" in listed  # the shipped price table's openai models
    logged = [r.getMessage() for r in caplog.records if "model list" in r.getMessage()]
    assert len(logged) == 1 and "price table" in logged[0], logged
    assert "rejected the gateway's credentials" in logged[0]
    assert "local-upstream-key" not in caplog.text
    assert gw.gw.providers["local"].models_source == "price table"


async def test_a_silent_provider_delays_neither_the_start_nor_a_listing(
    start_gateway: StartGateway, local: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await local(VLLM_MODELS)
    fake.listing_fails.append(Hang())
    cfg = Config(upstream=UpstreamConfig(models_timeout=30))
    started = time.perf_counter()
    gw = await start_gateway(providers={"local": ("openai", fake.base_url + "/v1")}, config=cfg)
    await until(lambda: asyncio.sleep(0, bool(fake.listings)))  # the fetch is under way
    listed = await ids(gw)
    assert time.perf_counter() - started < 5
    assert gw.gw.model_lists is not None and not gw.gw.model_lists.first_round.is_set()
    assert "local/gpt-4o-mini" in listed  # the price table meanwhile


async def test_a_fetch_is_bounded_by_models_timeout(
    start_gateway: StartGateway, local: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await local(VLLM_MODELS)
    fake.listing_fails.append(Hang())
    cfg = Config(upstream=UpstreamConfig(models_timeout=0.3))
    with caplog.at_level(logging.WARNING, logger="aigw.providers"):
        gw = await start_gateway(providers={"local": ("openai", fake.base_url + "/v1")}, config=cfg)
        await first_round(gw)
    assert "no answer within 0.3 s" in caplog.text
    assert "local/gpt-4o-mini" in await ids(gw)


async def test_lists_are_refreshed_and_a_failed_refresh_keeps_the_last(
    start_gateway: StartGateway, local: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await local(list(OLLAMA_MODELS))
    cfg = Config(upstream=UpstreamConfig(models_refresh=0.05))
    with caplog.at_level(logging.WARNING, logger="aigw.providers"):
        gw = await start_gateway(providers={"local": ("openai", fake.base_url + "/v1")}, config=cfg)
        await first_round(gw)
        assert await ids(gw) == ["local/llama3.2:latest"]
        # A model pulled on the server shows up at the next refresh.
        fake.model_list = [*OLLAMA_MODELS, {**OLLAMA_MODELS[0], "id": "qwen3:8b"}]

        async def shows_new() -> bool:
            return "local/qwen3:8b" in await ids(gw)

        await until(shows_new)
        fake.listing_fails.append(Fail(500, "boom"))

        async def logged() -> bool:
            return "keeping the last one" in caplog.text

        await until(logged)
    assert await ids(gw) == ["local/llama3.2:latest", "local/qwen3:8b"]


async def test_models_refresh_zero_never_fetches(start_gateway: StartGateway, local: Any) -> None:
    fake = await local(VLLM_MODELS)
    cfg = Config(upstream=UpstreamConfig(models_refresh=0))
    gw = await start_gateway(providers={"local": ("openai", fake.base_url + "/v1")}, config=cfg)
    await first_round(gw)
    assert "local/gpt-4o-mini" in await ids(gw)
    assert fake.listings == []


def test_the_config_options_are_read_and_checked(tmp_path: Any) -> None:
    from aigw import config as config_mod

    path = tmp_path / "config.toml"
    path.write_text("[upstream]\nmodels_refresh = 600\nmodels_timeout = 5\n")
    cfg = config_mod.load(path)
    assert (cfg.upstream.models_refresh, cfg.upstream.models_timeout) == (600, 5)
    path.write_text("[upstream]\nmodels_timeout = 0\n")
    with pytest.raises(ConfigError, match="models_timeout"):
        config_mod.load(path)
    path.write_text("[upstream]\nmodels_refresh = -1\n")
    with pytest.raises(ConfigError, match="models_refresh"):
        config_mod.load(path)


def test_adapters_read_only_sane_entries_from_a_model_list() -> None:
    """A provider's list is upstream text: odd entries are skipped, never listed."""
    from aigw.providers import adapters

    by_type = adapters()
    junk: list[Any] = [None, 7, {}, {"id": 5}, {"id": ""}, {"id": "../x"}, {"id": "a b"}]
    page = by_type["openai"].models_page({"data": [*junk, {"id": "ok", "created": -1}]})
    assert [(m.id, m.created) for m in page.models] == [("ok", None)]
    page = by_type["anthropic"].models_page(
        {"data": [*junk, {"id": "c", "created_at": "yesterday"}], "has_more": True}
    )
    assert [m.id for m in page.models] == ["c"] and page.next is None  # no last_id: stop
    page = by_type["gemini"].models_page(
        {
            "models": [
                *junk,
                {"name": "models/g", "supportedGenerationMethods": "generateContent"},
                {"name": "models/p", "supportedGenerationMethods": ["predict"]},
            ],
            "nextPageToken": "",
        }
    )
    assert [m.id for m in page.models] == ["g"] and page.next is None
    for type_, bad in (("openai", {"data": {}}), ("anthropic", {}), ("gemini", {"models": 1})):
        with pytest.raises(TranslationError):
            by_type[type_].models_page(bad)


async def test_a_provider_that_pages_forever_is_cut_off(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigw.providers.catalog import MAX_PAGES

    class Endless(FakeGemini):
        async def list_models(self, request: Any) -> Any:
            await self.record_listing(request)
            n = len(self.listings)
            return web.json_response(
                {"models": [{"name": f"models/m{n}"}], "nextPageToken": f"t{n}"}
            )

    fake = await Endless().start()
    monkeypatch.setenv("AIGW_G_API_KEY", "k")
    try:
        gw = await start_gateway(providers={"g": ("gemini", fake.base_url)})
        await first_round(gw)
        assert len(fake.listings) == MAX_PAGES
        assert len(gw.gw.providers["g"].models) == MAX_PAGES
    finally:
        await fake.close()
