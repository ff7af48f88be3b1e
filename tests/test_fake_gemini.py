"""The fake Gemini upstream speaks the real wire format: the official google-genai SDK
drives it, and the translators round-trip through it as the gateway will."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import ClientPayloadError, ClientSession, web
from google import genai
from google.genai import errors as gerrors
from google.genai import types
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aigw.translate.common import TranslateOptions
from aigw.translate.gemini import (
    ChatToGeminiStream,
    GeminiToChatStream,
    chat_to_gemini_request,
    chat_to_gemini_response,
    embeddings_to_gemini_request,
    gemini_to_chat_request,
    gemini_to_chat_response,
    gemini_to_embeddings_response,
    parse_gemini_error,
    sse_event,
)
from aigw.usage import Usage
from tests.fakes.base import DieMidStream, Fail, Hang, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

MODEL = "gemini-2.5-flash"
KEY = {"x-goog-api-key": "test-key"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini()
    await server.start()
    yield server
    await server.close()


def sdk(base_url: str, api_version: str | None = None) -> genai.Client:
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


@pytest.fixture
async def client(fake: FakeGemini) -> AsyncIterator[genai.client.AsyncClient]:
    c = sdk(fake.base_url, "v1beta").aio
    yield c
    await c.aclose()


def sse_events(raw: bytes) -> list[Any]:
    """Split a Gemini SSE body the strict way: CRLF CRLF between events, 'data: ' prefix."""
    assert raw.endswith(b"\r\n\r\n")
    return [
        orjson.loads(block.removeprefix(b"data: ")) for block in raw.split(b"\r\n\r\n") if block
    ]


# -- the SDK against the fake --------------------------------------------------------------


async def test_sdk_generate_content(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.then(Reply(text="Hi there", usage=Usage(120, 30, cached_tokens=100, reasoning_tokens=21)))
    resp = await client.models.generate_content(model=MODEL, contents="Hello")
    assert resp.text == "Hi there"
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    u = resp.usage_metadata
    assert u is not None
    assert (u.prompt_token_count, u.candidates_token_count, u.thoughts_token_count) == (120, 9, 21)
    assert (u.cached_content_token_count, u.total_token_count) == (100, 150)
    assert resp.model_version == MODEL
    assert fake.last.path == f"/v1beta/models/{MODEL}:generateContent"
    assert fake.last.headers["x-goog-api-key"] == "test-key"
    assert fake.last.body["contents"] == [{"parts": [{"text": "Hello"}], "role": "user"}]


async def test_sdk_default_api_version(fake: FakeGemini) -> None:
    c = sdk(fake.base_url).aio
    try:
        resp = await c.models.generate_content(model=MODEL, contents="Hello")
    finally:
        await c.aclose()
    assert resp.text == "Hello from the fake provider."
    assert fake.last.path.startswith("/v1")


async def test_sdk_stream(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.then(Reply(text="Streaming from a fake Gemini", usage=Usage(10, 20, reasoning_tokens=5)))
    chunks = [
        c async for c in await client.models.generate_content_stream(model=MODEL, contents="Hi")
    ]
    assert len(chunks) > 2
    assert "".join(c.text or "" for c in chunks) == "Streaming from a fake Gemini"
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 15
    assert last.usage_metadata.thoughts_token_count == 5
    assert fake.last.query == {"alt": "sse"}


async def test_sdk_function_calls(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.then(Reply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_time", {})]))
    resp = await client.models.generate_content(
        model=MODEL,
        contents="Weather?",
        config=types.GenerateContentConfig(
            tools=[
                types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather")])
            ],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    assert [(f.name, f.args) for f in resp.function_calls or []] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]


async def test_sdk_embeddings_and_count_tokens(
    fake: FakeGemini, client: genai.client.AsyncClient
) -> None:
    emb = await client.models.embed_content(
        model="gemini-embedding-001",
        contents=["a", "b"],
        config=types.EmbedContentConfig(output_dimensionality=4),
    )
    assert [e.values for e in emb.embeddings or []] == [[0.1, 0.2, 0.3, 0.0], [0.2, 0.2, 0.3, 0.0]]
    assert fake.last.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    tokens = await client.models.count_tokens(model=MODEL, contents="twelve chars")
    assert tokens.total_tokens == 3


async def test_sdk_sees_google_errors(fake: FakeGemini, client: genai.client.AsyncClient) -> None:
    fake.then(Fail(429, "Quota exceeded for metric", headers={"Retry-After": "7"}))
    with pytest.raises(gerrors.ClientError) as e:
        await client.models.generate_content(model=MODEL, contents="Hi")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"
    assert e.value.message == "Quota exceeded for metric"
    fake.then(Fail(503, "The model is overloaded."))
    with pytest.raises(gerrors.ServerError) as se:
        await client.models.generate_content(model=MODEL, contents="Hi")
    assert se.value.status == "UNAVAILABLE"


async def test_auth(fake: FakeGemini) -> None:
    url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    async with ClientSession() as http:
        async with http.post(url, json=body) as r:
            assert r.status == 403
            assert parse_gemini_error(await r.read())[1] == "PERMISSION_DENIED"
        async with http.post(url, json=body, params={"key": "k"}) as r:
            assert r.status == 200
        fake.api_key = "right"
        async with http.post(url, json=body, headers={"x-goog-api-key": "wrong"}) as r:
            assert r.status == 400
            err = (await r.json())["error"]
            assert err["status"] == "INVALID_ARGUMENT"
            assert err["details"][0]["reason"] == "API_KEY_INVALID"
        async with http.post(url, json=body, headers={"x-goog-api-key": "right"}) as r:
            assert r.status == 200
        async with http.post(
            f"{fake.base_url}/v1beta/models/{MODEL}:explode", json=body, params={"key": "right"}
        ) as r:
            assert r.status == 404


async def test_raw_stream_framing_hang_and_death(fake: FakeGemini) -> None:
    url = f"{fake.base_url}/v1beta/models/{MODEL}:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    async with ClientSession() as http:
        async with http.post(url, json=body, params={"alt": "sse"}, headers=KEY) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            events = sse_events(await r.read())
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"
        # Without alt=sse Google answers a JSON array.
        async with http.post(url, json=body, headers=KEY) as r:
            array = await r.json()
        assert [e["candidates"] for e in array] == [e["candidates"] for e in events]
        fake.then(
            Fail(
                400,
                "bad",
                body=b'[{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]',
            )
        )
        async with http.post(url, json=body, headers=KEY) as r:
            assert parse_gemini_error(await r.read()) == ("bad", "INVALID_ARGUMENT")
        fake.then(DieMidStream(after=1))
        with pytest.raises(ClientPayloadError):
            async with http.post(url, json=body, params={"alt": "sse"}, headers=KEY) as r:
                await r.read()
        fake.then(Hang(seconds=0.05))
        async with http.post(url, json=body, params={"alt": "sse"}, headers=KEY) as r:
            assert r.status == 504


# -- the translators through the fake, as the gateway uses them ------------------------------


async def test_openai_request_through_fake(fake: FakeGemini) -> None:
    req = {
        "model": "my-gemini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_completion_tokens": 50,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {
                        "type": "object",
                        "properties": {"q": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
            }
        ],
    }
    t = chat_to_gemini_request(req, TranslateOptions(upstream_model=MODEL))
    fake.then(
        Reply(tool_calls=[("lookup", {"q": "weather"})], usage=Usage(40, 12, reasoning_tokens=4))
    )
    async with ClientSession() as http:
        url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent"
        async with http.post(url, json=t.body, headers=KEY) as r:
            resp = gemini_to_chat_response(await r.json(), model="my-gemini")
    assert fake.last.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    out = ChatCompletion.model_validate(resp)
    assert out.choices[0].finish_reason == "tool_calls"
    calls = out.choices[0].message.tool_calls or []
    assert calls[0].function.name == "lookup"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"q": "weather"}  # type: ignore[union-attr]
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (
        40,
        12,
    )


async def test_openai_stream_through_fake(fake: FakeGemini) -> None:
    t = chat_to_gemini_request(
        {"messages": [{"role": "user", "content": "Hi"}], "stream": True},
        TranslateOptions(upstream_model=MODEL),
    )
    fake.then(Reply(text="A streamed answer.", usage=Usage(9, 6)))
    async with ClientSession() as http:
        url = f"{fake.base_url}/v1beta/models/{MODEL}:streamGenerateContent"
        async with http.post(url, json=t.body, params={"alt": "sse"}, headers=KEY) as r:
            events = sse_events(await r.read())
    stream = GeminiToChatStream(model="my-gemini")
    chunks = [ChatCompletionChunk.model_validate(c) for e in events for c in stream.feed(e)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "A streamed answer."
    assert chunks[-1].choices[0].finish_reason == "stop"
    final = ChatCompletionChunk.model_validate(stream.final_usage_chunk())
    assert final.usage is not None and final.usage.total_tokens == 15


async def test_embeddings_through_fake(fake: FakeGemini) -> None:
    t = embeddings_to_gemini_request(
        {"input": ["a", "b", "c"], "dimensions": 3}, upstream_model="gemini-embedding-001"
    )
    async with ClientSession() as http:
        url = f"{fake.base_url}/v1beta/models/gemini-embedding-001:batchEmbedContents"
        async with http.post(url, json=t.body, headers=KEY) as r:
            resp = gemini_to_embeddings_response(
                await r.json(), model="e", encoding_format="float", prompt_tokens=3
            )
    assert [d["embedding"][0] for d in resp["data"]] == pytest.approx([0.1, 0.2, 0.3])
    assert resp["data"][2]["embedding"][1:] == [0.2, 0.3]


# -- Gemini clients served from an OpenAI upstream: the reverse direction -----------------------


@pytest.fixture
async def reverse(fake_openai: FakeOpenAI) -> AsyncIterator[str]:
    """A minimal Gemini front door over the OpenAI fake, wired the way the gateway wires it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        stream = method == "streamGenerateContent"
        hub = gemini_to_chat_request(await request.json(), model=model, stream=stream)
        url = f"{fake_openai.base_url}/v1/chat/completions"
        async with ClientSession() as http, http.post(url, json=hub) as up:
            if not stream:
                return web.json_response(chat_to_gemini_response(await up.json()))
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            translator = ChatToGeminiStream(model=model)
            async for line in up.content:
                data = line.strip().removeprefix(b"data: ")
                if data and data != b"[DONE]":
                    for obj in translator.feed(orjson.loads(data)):
                        await resp.write(sse_event(obj))
            for obj in translator.finish():
                await resp.write(sse_event(obj))
            await resp.write_eof()
            return resp

    app = web.Application()
    app.router.add_post("/v1beta/models/{target}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_sdk_over_openai_upstream(reverse: str, fake_openai: FakeOpenAI) -> None:
    c = sdk(reverse, "v1beta").aio
    try:
        fake_openai.then(Reply(text="Translated!", usage=Usage(12, 4)))
        resp = await c.models.generate_content(
            model="gpt-4o",
            contents="Hi",
            config=types.GenerateContentConfig(system_instruction="Be nice."),
        )
        assert resp.text == "Translated!"
        assert resp.usage_metadata is not None and resp.usage_metadata.total_token_count == 16
        assert fake_openai.last.body["messages"][0] == {"role": "system", "content": "Be nice."}

        fake_openai.then(Reply(text="Streamed through two formats"))
        chunks = [
            x async for x in await c.models.generate_content_stream(model="gpt-4o", contents="Hi")
        ]
        assert "".join(x.text or "" for x in chunks) == "Streamed through two formats"
        assert (
            chunks[-1].usage_metadata is not None
            and chunks[-1].usage_metadata.prompt_token_count == 11
        )
        assert fake_openai.last.body["stream_options"] == {"include_usage": True}

        fake_openai.then(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
        config = types.GenerateContentConfig(
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name="get_weather",
                            parameters=types.Schema(
                                type=types.Type.OBJECT,
                                properties={"city": types.Schema(type=types.Type.STRING)},
                            ),
                        )
                    ]
                )
            ],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        calls: list[Any] = []
        async for x in await c.models.generate_content_stream(
            model="gpt-4o", contents="Weather?", config=config
        ):
            calls += x.function_calls or []
        assert [(f.name, f.args) for f in calls] == [("get_weather", {"city": "Paris"})]
        sent = fake_openai.last.body["tools"][0]["function"]
        assert sent["parameters"] == {"type": "object", "properties": {"city": {"type": "string"}}}
    finally:
        await c.aclose()
