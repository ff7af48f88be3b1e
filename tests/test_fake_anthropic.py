"""The fake Anthropic upstream speaks the real wire format: the official SDK drives it,
and the translators round-trip through it as the gateway will."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import ClientSession
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aigw.translate.anthropic import (
    DEFAULT_VERSION,
    MessagesToChatStream,
    chat_to_messages_request,
    messages_to_chat_response,
    parse_anthropic_error,
)
from aigw.translate.common import TranslateOptions
from aigw.usage import Usage
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import DieMidStream, Fail, Reply

MODEL = "claude-sonnet-4-6"  # not deprecated: the SDK warns (an error here) on those
HELLO: list[MessageParam] = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="sk-ant-test", max_retries=0
    ) as c:
        yield c


async def test_sdk_plain_message(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.then(Reply(text="Hi there", usage=Usage(120, 9, cached_tokens=100, cache_write_tokens=15)))
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert msg.content[0].type == "text" and msg.content[0].text == "Hi there"
    assert msg.model == MODEL and msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 5  # Anthropic excludes cache reads and writes
    assert (msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (100, 15)
    assert msg.usage.output_tokens == 9
    assert fake.last.path == "/v1/messages"
    # This SDK sends its key as a Bearer token and its own API version.
    assert fake.last.headers["Authorization"] == "Bearer sk-ant-test"
    assert fake.last.headers["anthropic-version"]


async def test_sdk_stream_text(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.then(Reply(text="Streaming works fine."))
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == "Streaming works fine."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)


async def test_sdk_stream_tool_use(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.then(Reply(tool_calls=[("get_weather", {"city": "Paris", "days": 3})]))
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Paris", "days": 3})
    assert final.stop_reason == "tool_use"


async def test_sdk_sees_anthropic_errors(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.then(Fail(429, "Number of requests has exceeded your rate limit", {"retry-after": "7"}))
    with pytest.raises(anthropic.RateLimitError) as e:
        await client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    assert e.value.response.headers["retry-after"] == "7"
    assert isinstance(e.value.body, dict)
    assert e.value.body["error"]["type"] == "rate_limit_error"
    fake.then(Fail(529, "Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as e2:
        await client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    assert e2.value.status_code == 529


async def test_sdk_count_tokens(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    result = await client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert result.input_tokens >= 1
    assert fake.last.path == "/v1/messages/count_tokens"


async def test_headers_are_required(fake: FakeAnthropic) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO}
    async with ClientSession() as http:
        url = fake.base_url + "/v1/messages"
        async with http.post(url, json=body, headers={"anthropic-version": DEFAULT_VERSION}) as r:
            assert r.status == 401
            assert parse_anthropic_error(await r.read())[1] == "authentication_error"
        async with http.post(url, json=body, headers={"x-api-key": "k"}) as r:
            assert r.status == 400
            assert parse_anthropic_error(await r.read())[1] == "invalid_request_error"


async def test_die_mid_stream(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.then(DieMidStream(after=3))
    # The SDK surfaces its HTTP library's error for a truncated body.
    with pytest.raises(Exception, match=r"incomplete|closed"):
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            await stream.get_final_message()


# -- the gateway's path: OpenAI request -> Anthropic upstream -> OpenAI response ---------


async def _post(fake: FakeAnthropic, body: dict[str, Any]) -> tuple[int, bytes]:
    headers = {"x-api-key": "k", "anthropic-version": DEFAULT_VERSION}
    async with (
        ClientSession() as http,
        http.post(fake.base_url + "/v1/messages", json=body, headers=headers) as r,
    ):
        return r.status, await r.read()


def _sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.decode().split("\n\n"):
        name, data = "", None
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = orjson.loads(line[5:])
        if data is not None:
            events.append((name, data))
    return events


async def test_translated_round_trip(fake: FakeAnthropic) -> None:
    opts = TranslateOptions(upstream_model=MODEL)
    req = {"model": "smart", "messages": HELLO, "temperature": 0.2}
    fake.then(Reply(text="Bonjour", usage=Usage(30, 4, cached_tokens=20)))
    status, raw = await _post(fake, chat_to_messages_request(req, opts).body)
    assert status == 200
    out = messages_to_chat_response(orjson.loads(raw), model="smart")
    completion = ChatCompletion.model_validate(out)
    assert completion.choices[0].message.content == "Bonjour"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 4)
    assert fake.last.body["model"] == MODEL


async def test_translated_stream_with_tool_call(fake: FakeAnthropic) -> None:
    opts = TranslateOptions(upstream_model=MODEL)
    req = {"model": "smart", "messages": HELLO, "stream": True}
    fake.then(
        Reply(tool_calls=[("lookup", {"q": "aigw"})], usage=Usage(50, 12, cache_write_tokens=40))
    )
    status, raw = await _post(fake, chat_to_messages_request(req, opts).body)
    assert status == 200
    stream = MessagesToChatStream(model="smart")
    chunks = [c for name, data in _sse_events(raw) for c in stream.feed(name, data)]
    chunks.append(stream.final_usage_chunk())
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    calls = [tc for p in parsed if p.choices for tc in p.choices[0].delta.tool_calls or []]
    assert calls[0].id == "toolu_fake1_0" and calls[0].function is not None
    assert calls[0].function.name == "lookup"
    args = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert orjson.loads(args) == {"q": "aigw"}
    assert parsed[-2].choices[0].finish_reason == "tool_calls"
    assert stream.usage == Usage(50, 12, cache_write_tokens=40)
