"""Issue 3's edges: bare model names, count_tokens, embeddings, Responses API,
translation warnings and strictness, images, and errors in each client's envelope."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types

from aigw.config import Config
from aigw.usage import Usage
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import DieMidStream, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)
HI = [{"role": "user", "content": "hi"}]
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


async def test_bare_family_names_route_to_the_one_provider_of_that_type(
    trio: RunningGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> None:
    key = await trio.key()
    async with trio.openai(key) as client:
        for model, fake in (
            ("gpt-4o", fake_openai),
            ("o3-mini", fake_openai),
            ("claude-haiku-4-5", fake_anthropic),
            ("gemini-2.5-pro", fake_gemini),
        ):
            raw = await client.chat.completions.with_raw_response.create(model=model, messages=HI)
            assert raw.headers["x-aigw-upstream-model"] == model
            assert model in json.dumps(fake.last.body) or model in fake.last.path


async def test_bare_name_with_two_providers_of_a_family_is_ambiguous(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    url = fake_openai.base_url + "/v1"
    gw = await start_gateway(providers={"a": ("openai", url), "b": ("openai", url)})
    key = await gw.key()
    async with gw.openai(key) as client:
        with pytest.raises(openai.NotFoundError, match="ambiguous"):
            await client.chat.completions.create(model="gpt-4o", messages=HI)
        await client.chat.completions.create(model="b/gpt-4o", messages=HI)


async def test_count_tokens_exact_from_anthropic_estimated_elsewhere(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    key = await trio.key()
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as c:
        msgs: Any = [{"role": "user", "content": "How many tokens is this sentence?"}]
        exact = await c.messages.with_raw_response.count_tokens(model="m-anthropic", messages=msgs)
        assert exact.headers["x-aigw-token-count"] == "exact"
        assert fake_anthropic.last.path == "/v1/messages/count_tokens"
        assert fake_anthropic.last.body["model"] == "claude-sonnet-4-6"
        assert (await exact.parse()).input_tokens > 0
        estimated = await c.messages.with_raw_response.count_tokens(model="m-openai", messages=msgs)
        assert estimated.headers["x-aigw-token-count"] == "estimated"
        assert 5 <= (await estimated.parse()).input_tokens <= 20
    rows = await trio.fetchall("SELECT COUNT(*) FROM ledger")
    assert rows[0][0] == 0  # counting is free and not billed


async def test_embeddings_openai_passthrough_and_gemini_translation(
    trio: RunningGateway, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    key = await trio.key()
    async with trio.openai(key) as client:
        # The SDK asks for base64 by default and decodes it; both paths must agree.
        out = await client.embeddings.create(
            model="openai/text-embedding-3-small", input=["a", "b"]
        )
        assert [len(d.embedding) for d in out.data] == [3, 3]
        assert out.usage.prompt_tokens == 10
        assert fake_openai.last.path == "/v1/embeddings"
        raw = await client.embeddings.with_raw_response.create(
            model="gemini/gemini-embedding-001",
            input=["hello world", "bye"],
            encoding_format="float",
        )
        emb = raw.parse()
        assert len(emb.data) == 2 and all(len(d.embedding) > 0 for d in emb.data)
        assert fake_gemini.last.path.endswith(":batchEmbedContents")
        assert fake_gemini.last.body["requests"][0]["content"]["parts"][0]["text"] == "hello world"
        row = (await trio.gw.store.reports.by_request_id(raw.headers["x-request-id"]))[0]
        assert row.usage_estimated and row.prompt_tokens > 0 and row.endpoint == "embeddings"
        b64 = await client.embeddings.create(model="gemini/gemini-embedding-001", input="hi")
        assert len(b64.data[0].embedding) > 0
        with pytest.raises(openai.BadRequestError, match="no embeddings"):
            await client.embeddings.create(model="anthropic/claude-sonnet-4-6", input="x")
        mock = await client.embeddings.create(
            model="mock/embed", input="x", encoding_format="base64"
        )
        # Asked for explicitly, base64 comes back as the string the API sent.
        assert len(_decode(str(mock.data[0].embedding))) == 8


async def test_responses_api_plain_and_streamed_with_usage(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = Reply(text="Responses!", usage=Usage(50, 8, 10, 0, 3))
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.responses.with_raw_response.create(model="m-openai", input="hi")
        assert raw.parse().output_text == "Responses!"
        row = (await trio.gw.store.reports.by_request_id(raw.headers["x-request-id"]))[0]
        assert (
            row.prompt_tokens,
            row.completion_tokens,
            row.cached_tokens,
            row.reasoning_tokens,
        ) == (50, 8, 10, 3)
        stream = await client.responses.create(model="m-openai", input="hi", stream=True)
        kinds = [e.type async for e in stream]
        assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    rows = await trio.fetchall(
        "SELECT prompt_tokens, stream FROM ledger WHERE endpoint = 'responses' AND status = 200"
    )
    assert sorted((r[0], r[1]) for r in rows) == [(50, 0), (50, 1)]


async def test_dropped_parameters_are_named_in_a_warning_header(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m-anthropic", messages=HI, seed=7, user="alice"
        )
        assert "seed" in raw.headers["x-aigw-warning"]
        assert fake_anthropic.last.body["metadata"] == {"user_id": "alice"}
        # No max_tokens from the client: Anthropic needs one, the default is sent.
        assert fake_anthropic.last.body["max_tokens"] == 4096
        # n > 1 changes the meaning: strict mode refuses, naming the parameter.
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="m-anthropic", messages=HI, n=2)
        assert isinstance(info.value.body, dict) and info.value.body["param"] == "n"


async def test_lenient_translation_drops_with_warning(
    start_gateway: StartGateway,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIGW_CLAUDE_API_KEY", "k")
    cfg = Config()
    cfg.translation.strict = False
    cfg.translation.default_max_tokens = 1234
    gw = await start_gateway(
        providers={"claude": ("anthropic", fake_anthropic.base_url)}, config=cfg
    )
    key = await gw.key()
    async with gw.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="claude/claude-sonnet-4-6", messages=HI, n=2
        )
    assert "n" in raw.headers["x-aigw-warning"]
    assert fake_anthropic.last.body["max_tokens"] == 1234


async def test_images_reach_each_provider_in_its_dialect(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    key = await trio.key()
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    async with trio.openai(key) as client:
        await client.chat.completions.create(
            model="m-anthropic", messages=[{"role": "user", "content": content}]
        )
        await client.chat.completions.create(
            model="m-gemini", messages=[{"role": "user", "content": content}]
        )
    blocks = fake_anthropic.last.body["messages"][0]["content"]
    assert {"type": "base64", "media_type": "image/png", "data": PIXEL} in [
        b.get("source") for b in blocks
    ]
    assert {"type": "url", "url": "https://example.com/cat.jpg"} in [
        b.get("source") for b in blocks
    ]
    parts = fake_gemini.last.body["contents"][0]["parts"]
    assert {"inlineData": {"mimeType": "image/png", "data": PIXEL}} in parts
    assert any(p.get("fileData", {}).get("fileUri") == "https://example.com/cat.jpg" for p in parts)


async def test_system_prompt_and_multi_turn_translate(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    key = await trio.key()
    msgs: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    async with trio.openai(key) as client:
        await client.chat.completions.create(
            model="m-anthropic", messages=msgs, stop=["END"], temperature=0.3
        )
        await client.chat.completions.create(model="m-gemini", messages=msgs, stop=["END"])
    a = fake_anthropic.last.body
    assert a["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert [m["role"] for m in a["messages"]] == ["user", "assistant", "user"]
    assert a["stop_sequences"] == ["END"] and a["temperature"] == 0.3
    g = fake_gemini.last.body
    assert g["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert [c["role"] for c in g["contents"]] == ["user", "model", "user"]
    assert g["generationConfig"]["stopSequences"] == ["END"]


async def test_gateway_errors_use_each_clients_envelope(trio: RunningGateway) -> None:
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key="gw-wrong", max_retries=0) as c:
        with pytest.raises(anthropic.AuthenticationError) as a_info:
            await c.messages.create(model="m-openai", max_tokens=5, messages=HI)
    body = a_info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    key = await trio.key()
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as c:
        with pytest.raises(anthropic.NotFoundError):
            await c.messages.create(model="nope", max_tokens=5, messages=HI)
        with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
            await c.messages.create(model="m-openai", max_tokens=0, messages=HI)
    client = genai.Client(api_key="gw-wrong", http_options=types.HttpOptions(base_url=trio.url))
    try:
        with pytest.raises(gerrors.ClientError) as g_info:
            await client.aio.models.generate_content(model="m-openai", contents="hi")
    finally:
        await client.aio.aclose()
    assert g_info.value.code == 401 and g_info.value.status == "UNAUTHENTICATED"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            trio.url + "/v1beta/models/m-openai:generateContent",
            headers={"x-goog-api-key": key},
            data=b"{not json",
        ) as r,
    ):
        assert r.status == 400
        err = (await r.json())["error"]
        assert err["status"] == "INVALID_ARGUMENT" and "not valid JSON" in err["message"]


async def test_gemini_stream_without_alt_sse_is_a_json_array(trio: RunningGateway) -> None:
    key = await trio.key()
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            trio.url + "/v1beta/models/m-openai:streamGenerateContent",
            headers={"x-goog-api-key": key},
            json=body,
        ) as r,
    ):
        assert r.status == 200
        data = await r.json()
    assert isinstance(data, list)
    assert data[0]["candidates"][0]["content"]["parts"][0]["text"]


async def test_translated_stream_dying_mid_way_raises_in_the_sdk(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    key = await trio.key()
    fake_anthropic.then(DieMidStream(after=4))
    async with trio.openai(key) as client:
        stream = await client.chat.completions.create(model="m-anthropic", messages=HI, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    row = await trio.fetchall("SELECT status, usage_estimated FROM ledger")
    assert [tuple(r) for r in row] == [(502, 1)]
    fake_gemini.then(DieMidStream(after=1))
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as c:
        with pytest.raises(anthropic.APIError):
            async with c.messages.stream(model="m-gemini", max_tokens=50, messages=HI) as s:
                async for _ in s:
                    pass


async def test_models_prefix_and_v1_paths_for_gemini_clients(trio: RunningGateway) -> None:
    key = await trio.key()
    for version in ("v1", "v1beta"):
        client = genai.Client(
            api_key=key, http_options=types.HttpOptions(base_url=trio.url, api_version=version)
        )
        try:
            resp = await client.aio.models.generate_content(model="models/m-openai", contents="hi")
        finally:
            await client.aio.aclose()
        assert resp.text


def _decode(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


async def test_upstream_rejecting_gateway_credentials_is_502_for_every_provider(
    start_gateway: StartGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "AIzaSyWRONG-gemini-key-1234567890"
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", secret)
    gw = await start_gateway(
        providers={
            "gemini": ("gemini", fake_gemini.base_url),
            "anthropic": ("anthropic", fake_anthropic.base_url),
        }
    )
    key = await gw.key()
    from tests.fakes.base import Fail

    fake_anthropic.then(Fail(401, "invalid x-api-key"))
    async with gw.openai(key) as client:
        for model in ("gemini/gemini-2.5-flash", "anthropic/claude-sonnet-4-6"):
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(model=model, messages=HI)
            assert info.value.status_code == 502, model
            assert "rejected the gateway's credentials" in info.value.message
            assert secret not in info.value.response.text
    assert secret not in caplog.text


async def test_json_mode_reaches_each_provider_in_its_dialect(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    key = await trio.key()
    # Anthropic has no JSON mode: aigw forces a tool and turns its input back into text.
    fake_anthropic.then(Reply(tool_calls=[("aigw_json_response", {"city": "Paris"})]))
    async with trio.openai(key) as client:
        resp = await client.chat.completions.create(
            model="m-anthropic", messages=HI, response_format=fmt
        )
        assert json.loads(resp.choices[0].message.content or "") == {"city": "Paris"}
        assert resp.choices[0].finish_reason == "stop" and not resp.choices[0].message.tool_calls
        sent = fake_anthropic.last.body
        assert sent["tool_choice"]["name"] == "aigw_json_response"
        assert sent["tools"][0]["input_schema"] == schema
        await client.chat.completions.create(model="m-gemini", messages=HI, response_format=fmt)
    config = fake_gemini.last.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema


async def test_warning_header_survives_odd_parameter_names(
    start_gateway: StartGateway, fake_gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")
    cfg = Config()
    cfg.translation.strict = False
    gw = await start_gateway(providers={"gemini": ("gemini", fake_gemini.base_url)}, config=cfg)
    key = await gw.key()
    async with gw.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gemini/gemini-2.5-flash", messages=HI, extra_body={"pärameter\nx": 1}
        )
    assert raw.http_response.status_code == 200
    warning = raw.headers["x-aigw-warning"]
    assert warning.isascii() and "p\\xe4rameter\\nx" in warning
