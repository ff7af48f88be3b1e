"""Claude Code's recorded requests sent to a running gateway, to every provider type.

The bodies and headers are those in ``tests/fixtures/claude_code/`` (see
``tests/translate/test_claude_code.py``), posted as Claude Code posts them: streamed,
with its ``anthropic-beta`` header listing several betas, under the default
``[translation] strict = true``. The SSE answer is replayed through the anthropic SDK's
own stream accumulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic.types import Message
from google import genai
from google.genai import types as genai_types

from aigw.config import Config
from aigw.sse import SSEParser
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Reply, ToolLoop
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.translate.anthropic.helpers import accumulate

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
# google-genai subclasses aiohttp's ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


def recorded(name: str) -> tuple[dict[str, str], dict[str, Any]]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    headers = {k: v for k, v in data["headers"].items() if k.startswith("anthropic-")}
    return headers, data["body"]


async def post(
    gw: RunningGateway, key: str, name: str, model: str, **extra: Any
) -> tuple[aiohttp.ClientResponse, bytes]:
    headers, body = recorded(name)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url + "/v1/messages?beta=true",
            json={**body, "model": model, **extra},
            headers={**headers, "x-api-key": key},
        ) as resp,
    ):
        return resp, await resp.read()


def message_of(raw: bytes) -> Message:
    parser = SSEParser()
    events = [(e.event, json.loads(e.data)) for e in parser.feed(raw)]
    return accumulate(events)


@pytest.mark.parametrize("name", ["opus-4-7-turn1", "gpt-5.5-turn2", "sonnet-4-5-turn2"])
@pytest.mark.parametrize("model", ["m-openai", "m-gemini"])
async def test_claude_code_requests_reach_openai_and_gemini(
    trio: RunningGateway,
    fake_openai: FakeOpenAI,
    fake_gemini: FakeGemini,
    name: str,
    model: str,
) -> None:
    key = await trio.key()
    fake = fake_openai if model == "m-openai" else fake_gemini
    fake.default = ToolLoop(
        call=Reply(tool_calls=[("Bash", {"command": "echo hi", "description": "Say hi"})]),
        answer=Reply(
            text="All done.", thought="Checked the output." if fake is fake_gemini else ""
        ),
    )
    resp, raw = await post(trio, key, name, model)
    assert resp.status == 200, raw
    msg = message_of(raw)
    if name == "opus-4-7-turn1":  # a first turn: the fake calls a tool
        assert [b.type for b in msg.content] == ["tool_use"]
        assert msg.content[0].name == "Bash" and msg.stop_reason == "tool_use"  # type: ignore[union-attr]
    else:  # the turn after the tool result: text, with Gemini's thoughts first
        kinds = ["thinking", "text"] if fake is fake_gemini else ["text"]
        assert [b.type for b in msg.content] == kinds and msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 11 and msg.usage.output_tokens == 7
    # Nothing Claude Code sends was refused or silently lost on the way. Reported: for
    # m-openai (gpt-4o-mini) the reasoning it cannot do and its output limit (16,384
    # tokens, below Claude Code's 32,000 or 64,000: clamped, not refused); for m-gemini
    # the user id, which Gemini has no field for.
    warning = resp.headers.get("x-aigw-warning", "")
    sent = fake.last.body
    if fake is fake_openai:
        asked = recorded(name)[1]["max_tokens"]
        assert warning == (
            f"max_tokens {asked} is above the model's output limit; 16384 was sent; "
            "'reasoning_effort' was dropped: gpt-4o-mini does not reason"
        )
        assert "reasoning_effort" not in sent and sent["max_completion_tokens"] == 16384
    else:
        assert "'user' was dropped" in warning
        assert sent["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


async def test_claude_code_request_passes_untouched_to_anthropic(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    key = await trio.key()
    # A field newer than the gateway: the native path sends it on as it came.
    resp, raw = await post(
        trio, key, "gpt-5.5-turn2", "m-anthropic", future_field={"x": 1}, stream=False
    )
    assert resp.status == 200, raw
    headers, body = recorded("gpt-5.5-turn2")
    sent = fake_anthropic.last
    assert sent.body == {
        **body,
        "model": "claude-sonnet-4-6",
        "future_field": {"x": 1},
        "stream": False,
    }
    assert sent.headers["anthropic-beta"] == headers["anthropic-beta"]
    assert "x-aigw-warning" not in resp.headers


async def test_unknown_field_is_reported_on_a_translated_path(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    # Strict (the default) refuses answer-changing losses, never a field the real API
    # may accept: a newer field is dropped and named in x-aigw-warning.
    key = await trio.key()
    resp, raw = await post(trio, key, "opus-4-7-turn1", "m-openai", future_field={"x": 1})
    assert resp.status == 200, raw
    assert "future_field" in resp.headers["x-aigw-warning"]
    assert "future_field" not in fake_openai.last.body


async def test_unknown_field_is_refused_when_the_operator_asks(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = Config()
    cfg.translation.unknown_fields = "refuse"
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")},
        models={"m-openai": ("openai", "gpt-4o-mini")},
        config=cfg,
    )
    key = await gw.key()
    resp, raw = await post(gw, key, "opus-4-7-turn1", "m-openai", future_field={"x": 1})
    assert resp.status == 400
    err = json.loads(raw)
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert "future_field" in err["error"]["message"]
    assert fake_openai.requests == []


# -- thinking both ways, with the official SDKs -----------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_google_genai_thinking_budget_reaches_anthropic_and_thoughts_come_back(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, stream: bool
) -> None:
    key = await trio.key()
    fake_anthropic.default = Reply(text="42.", thought="Six times seven.")
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=trio.url))
    config = genai_types.GenerateContentConfig(
        thinking_config=genai_types.ThinkingConfig(thinking_budget=2048, include_thoughts=True)
    )
    try:
        if stream:
            parts = []
            async for chunk in await client.aio.models.generate_content_stream(
                model="m-anthropic", contents="6 x 7?", config=config
            ):
                if chunk.candidates and chunk.candidates[0].content:
                    parts.extend(chunk.candidates[0].content.parts or [])
        else:
            resp = await client.aio.models.generate_content(
                model="m-anthropic", contents="6 x 7?", config=config
            )
            parts = resp.candidates[0].content.parts or []  # type: ignore[index, union-attr]
    finally:
        await client.aio.aclose()
    # The number itself, not bucketed to an effort level (which would have been 4096).
    assert fake_anthropic.last.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "".join(p.text or "" for p in parts if p.thought) == "Six times seven."
    assert "".join(p.text or "" for p in parts if not p.thought) == "42."


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_thinking_to_gemini_comes_back_as_thinking_blocks(
    trio: RunningGateway, fake_gemini: FakeGemini, stream: bool
) -> None:
    key = await trio.key()
    fake_gemini.default = Reply(text="42.", thought="Six times seven.")
    kwargs: dict[str, Any] = {
        "model": "m-gemini",
        "max_tokens": 8000,
        "messages": [{"role": "user", "content": "6 x 7?"}],
        "thinking": {"type": "enabled", "budget_tokens": 3000},
    }
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as client:
        if stream:
            async with client.messages.stream(**kwargs) as s:
                msg = await s.get_final_message()
        else:
            msg = await client.messages.create(**kwargs)
    config = fake_gemini.last.body["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingBudget": 3000, "includeThoughts": True}
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "Six times seven."  # type: ignore[union-attr]
    assert msg.content[1].text == "42."  # type: ignore[union-attr]
