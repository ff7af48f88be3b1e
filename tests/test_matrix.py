"""Every client format to every provider: the three official SDKs x three fake upstreams.

Each combination is driven plain, streamed, with a tool call, and with an upstream
error; the ledger must hold exactly the tokens the upstream reported.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types

from aigw.model import LedgerRow
from aigw.usage import Usage
from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail, FakeUpstream, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

USAGE = Usage(prompt_tokens=123, completion_tokens=45, cached_tokens=20)
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PROVIDERS = ["openai", "anthropic", "gemini"]
CLIENTS = ["openai", "anthropic", "gemini"]


@dataclass
class Result:
    text: str
    tool: tuple[str, dict[str, Any]] | None
    request_id: str | None


# -- one small driver per SDK ------------------------------------------------------


async def via_openai(
    gw: RunningGateway, key: str, model: str, *, stream: bool, tools: bool
) -> Result:
    extra: dict[str, Any] = {"tools": [{"type": "function", "function": WEATHER}]} if tools else {}
    async with gw.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            stream=stream,
            max_tokens=200,
            **extra,
        )
        rid = raw.headers.get("x-request-id")
        parsed = raw.parse()
        if not stream:
            msg = parsed.choices[0].message
            tool = None
            if msg.tool_calls:
                fn = msg.tool_calls[0].function
                tool = (fn.name, json.loads(fn.arguments))
            return Result(msg.content or "", tool, rid)
        text, name, args = "", None, ""
        async for chunk in parsed:
            assert chunk.usage is None  # not asked for: the gateway removed it
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        name = call.function.name
                    args += (call.function.arguments or "") if call.function else ""
        return Result(text, (name, json.loads(args)) if name else None, rid)


async def via_anthropic(
    gw: RunningGateway, key: str, model: str, *, stream: bool, tools: bool
) -> Result:
    extra: dict[str, Any] = {}
    if tools:
        extra["tools"] = [
            {
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "input_schema": WEATHER["parameters"],
            }
        ]
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            **extra,
        }
        if not stream:
            raw = await client.messages.with_raw_response.create(**kwargs)
            msg = await raw.parse()
            rid = raw.headers.get("x-request-id")
        else:
            async with client.messages.stream(**kwargs) as s:
                async for _ in s:
                    pass
                msg = await s.get_final_message()
                rid = s.response.headers.get("x-request-id")
        text = "".join(b.text for b in msg.content if b.type == "text")
        tool = next(((b.name, dict(b.input)) for b in msg.content if b.type == "tool_use"), None)
        return Result(text, tool, rid)


async def via_gemini(
    gw: RunningGateway, key: str, model: str, *, stream: bool, tools: bool
) -> Result:
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))
    config = types.GenerateContentConfig(
        max_output_tokens=200,
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name=WEATHER["name"],
                        description=WEATHER["description"],
                        parameters_json_schema=WEATHER["parameters"],
                    )
                ]
            )
        ]
        if tools
        else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    try:
        if not stream:
            resp = await client.aio.models.generate_content(
                model=model, contents="Weather in Paris?", config=config
            )
            parts = resp.candidates[0].content.parts if resp.candidates else []
            rid = (
                resp.sdk_http_response.headers.get("x-request-id")
                if resp.sdk_http_response and resp.sdk_http_response.headers
                else None
            )
        else:
            parts, rid = [], None
            async for chunk in await client.aio.models.generate_content_stream(
                model=model, contents="Weather in Paris?", config=config
            ):
                if chunk.sdk_http_response and chunk.sdk_http_response.headers:
                    rid = chunk.sdk_http_response.headers.get("x-request-id")
                if chunk.candidates and chunk.candidates[0].content:
                    parts.extend(chunk.candidates[0].content.parts or [])
    finally:
        await client.aio.aclose()
    text = "".join(p.text or "" for p in parts if not p.thought)
    call = next((p.function_call for p in parts if p.function_call), None)
    return Result(text, (call.name, dict(call.args or {})) if call and call.name else None, rid)


Driver = Callable[..., Awaitable[Result]]
DRIVERS: dict[str, Driver] = {
    "openai": via_openai,
    "anthropic": via_anthropic,
    "gemini": via_gemini,
}


@pytest.fixture
def fakes(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> dict[str, FakeUpstream]:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


async def row_for(gw: RunningGateway, request_id: str | None) -> LedgerRow:
    if request_id is not None:
        rows = await gw.gw.store.reports.by_request_id(request_id)
    else:  # some SDK paths do not expose headers: take the newest row
        rows = [await newest(gw)]
    assert len(rows) == 1
    return rows[0]


async def newest(gw: RunningGateway) -> LedgerRow:
    rows = await gw.fetchall("SELECT request_id FROM ledger ORDER BY id DESC LIMIT 1")
    return (await gw.gw.store.reports.by_request_id(rows[0][0]))[0]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_text(
    trio: RunningGateway, fakes: dict[str, FakeUpstream], client: str, provider: str, stream: bool
) -> None:
    fake = fakes[provider]
    fake.then(Reply(text="It is sunny in Paris today.", usage=USAGE))
    key = await trio.key(team="matrix")
    result = await DRIVERS[client](trio, key, f"m-{provider}", stream=stream, tools=False)
    assert result.text == "It is sunny in Paris today."
    assert result.tool is None
    sent = fake.last
    assert "Weather in Paris?" in json.dumps(sent.body)
    # The upstream got a request in its own dialect, for the aliased upstream model.
    if provider == "openai":
        assert sent.body["model"] == "gpt-4o-mini" and sent.body["messages"][-1]["role"] == "user"
        assert sent.body.get("stream", False) is stream
    elif provider == "anthropic":
        assert sent.body["model"] == "claude-sonnet-4-6" and sent.body["max_tokens"] == 200
        assert sent.body["messages"][-1]["role"] == "user"
    else:
        assert sent.path.endswith(
            "gemini-2.5-flash:" + ("streamGenerateContent" if stream else "generateContent")
        )
        assert sent.body["contents"][-1]["role"] == "user"
        assert sent.body["generationConfig"]["maxOutputTokens"] == 200
        assert sent.headers["x-goog-api-key"] == "gemini-upstream-key"
    assert key not in json.dumps(sent.headers)
    row = await row_for(trio, result.request_id)
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (123, 45, 20)
    assert not row.usage_estimated and row.status == 200 and row.provider == provider
    assert row.cost_nusd is not None and row.cost_nusd > 0


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_tool_call(
    trio: RunningGateway, fakes: dict[str, FakeUpstream], client: str, provider: str, stream: bool
) -> None:
    fake = fakes[provider]
    fake.then(Reply(tool_calls=[("get_weather", {"city": "Paris"})], usage=USAGE))
    key = await trio.key()
    result = await DRIVERS[client](trio, key, f"m-{provider}", stream=stream, tools=True)
    assert result.tool == ("get_weather", {"city": "Paris"})
    # The tool definition reached the upstream in its own dialect.
    assert "get_weather" in json.dumps(fake.last.body)
    row = await row_for(trio, result.request_id)
    assert (row.prompt_tokens, row.completion_tokens) == (123, 45)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_upstream_error_reaches_each_sdk_as_its_own_exception(
    trio: RunningGateway, fakes: dict[str, FakeUpstream], client: str, provider: str
) -> None:
    fakes[provider].then(Fail(429, "slow down", {"Retry-After": "7"}))
    key = await trio.key()
    expected: dict[str, type[Exception]] = {
        "openai": openai.RateLimitError,
        "anthropic": anthropic.RateLimitError,
        "gemini": gerrors.ClientError,
    }
    with pytest.raises(expected[client]) as info:
        await DRIVERS[client](trio, key, f"m-{provider}", stream=False, tools=False)
    err: Any = info.value
    assert "slow down" in str(err)
    if client == "gemini":
        assert err.code == 429 and err.status == "RESOURCE_EXHAUSTED"
    else:
        assert err.response.headers["retry-after"] == "7"
    row = await newest(trio)
    assert row.status == 429 and row.provider == provider


async def test_native_anthropic_passthrough_keeps_client_headers(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    key = await trio.key()
    async with anthropic.AsyncAnthropic(
        base_url=trio.url, api_key=key, max_retries=0, default_headers={"anthropic-beta": "x-2026"}
    ) as client:
        await client.messages.create(
            model="anthropic/claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        )
    sent = fake_anthropic.last
    assert sent.headers["anthropic-beta"] == "x-2026"
    assert sent.headers["x-api-key"] == "anthropic-upstream-key"
    assert key not in json.dumps(sent.headers)
    assert sent.body["model"] == "claude-sonnet-4-6"
