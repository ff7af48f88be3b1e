"""OpenAI chat completions through the gateway, driven by the official openai SDK."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from aigw.usage import Usage
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Reply
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


async def test_plain_completion_is_passed_through(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, temperature=0.5
        )
    resp = raw.parse()
    assert resp.choices[0].message.content == "Hello from the fake provider."
    assert resp.usage is not None and resp.usage.prompt_tokens == 11
    # The alias went to the right upstream model, and the key stayed at the gateway.
    sent = fake_openai.last
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["temperature"] == 0.5
    assert "stream_options" not in sent.body
    assert key not in json.dumps(sent.headers)
    assert raw.headers["x-aigw-provider"] == "openai"
    assert raw.headers["x-aigw-upstream-model"] == "gpt-4o-mini"
    assert raw.headers["x-request-id"].startswith("req_")
    # gpt-4o-mini: 11 x $0.15/M + 7 x $0.60/M
    assert raw.headers["x-aigw-cost-usd"] == "0.000005850"


async def test_provider_slash_model_routes_to_that_provider(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="openai/my-finetune:v2", messages=HI)
    assert fake_openai.last.body["model"] == "my-finetune:v2"


async def test_provider_key_is_sent_upstream(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "sk-upstream-secret")
    gw = await start_gateway(providers={"openai": ("openai", fake_openai.base_url + "/v1")})
    key = await gw.key()
    async with gw.openai(key) as client:
        await client.chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert fake_openai.last.headers["Authorization"] == "Bearer sk-upstream-secret"


async def test_stream_without_usage_request_hides_usage_chunk(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        stream = await client.chat.completions.create(model="fast", messages=HI, stream=True)
        chunks = [c async for c in stream]
    # The gateway asked upstream for usage...
    assert fake_openai.last.body["stream_options"] == {"include_usage": True}
    # ...and took that extra chunk out again: every chunk has a choice, none has usage.
    assert all(c.choices and c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Hello from the fake provider."
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_stream_with_usage_request_keeps_usage_chunk(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Reply(usage=Usage(prompt_tokens=20, completion_tokens=9, cached_tokens=4)))
    key = await gateway.key()
    async with gateway.openai(key) as client:
        stream = await client.chat.completions.create(
            model="fast", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


async def test_stream_ledger_row_has_upstream_usage(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Reply(usage=Usage(prompt_tokens=1000, completion_tokens=500)))
    key = await gateway.key()
    async with gateway.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, stream=True
        )
        request_id = raw.headers["x-request-id"]
        async for _ in raw.parse():
            pass
    rows = await gateway.gw.store.reports.by_request_id(request_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row.prompt_tokens, row.completion_tokens, row.status) == (1000, 500, 200)
    assert row.stream and not row.usage_estimated
    assert row.cost_nusd == 1000 * 150 + 500 * 600  # gpt-4o-mini, in nano-USD


async def test_streamed_tool_call_arguments_arrive_intact(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Reply(tool_calls=[("get_weather", {"city": "Paris", "unit": "C"})]))
    key = await gateway.key()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    async with gateway.openai(key) as client:
        stream = await client.chat.completions.create(
            model="fast",
            messages=HI,
            stream=True,
            tools=tools,  # type: ignore[arg-type]
        )
        args = ""
        async for c in stream:
            for call in c.choices[0].delta.tool_calls or []:
                args += call.function.arguments or "" if call.function else ""
    assert json.loads(args) == {"city": "Paris", "unit": "C"}
    assert fake_openai.last.body["tools"] == tools


async def test_unknown_model_is_404_in_openai_envelope(gateway: RunningGateway) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="nope", messages=HI)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert "nope" in body["message"] and "openai" in body["message"]
    assert set(body) == {"message", "type", "param", "code"}


async def test_models_list_shows_aliases_and_provider_models(gateway: RunningGateway) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        ids = [m.id async for m in client.models.list()]
    assert "fast" in ids
    assert "mock/echo" in ids
    assert any(i.startswith("openai/gpt-") for i in ids)


async def test_health_and_readiness(gateway: RunningGateway) -> None:
    async with aiohttp.ClientSession(gateway.url) as http:
        async with http.get("/healthz") as health:
            assert health.status == 200 and await health.json() == {"status": "ok"}
            assert "x-request-id" in health.headers
        async with http.get("/readyz") as ready:
            assert ready.status == 200
            body = await ready.json()
    assert body["checks"] == {"database": "ok", "ledger": "ok"}
    assert body["counters"] == "in process"


async def test_mock_provider_answers_offline(gateway: RunningGateway) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        resp = await client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "ping"}]
        )
        assert resp.choices[0].message.content == "Mock answer to: ping"
        stream = await client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "ping"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Mock answer to: ping"
