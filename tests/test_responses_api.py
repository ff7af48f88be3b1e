"""Issue 9 item 4: the Responses API to every provider.

The official openai SDK's ``client.responses`` through the real gateway to the fake
anthropic and gemini providers (translated through the hub) and the fake openai one
(passed through): text, streaming, a tool-call round trip, reasoning, usage, ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import agents
import openai
import pytest
from openai.types.responses import FunctionToolParam, Response, ResponseFunctionToolCall

from aigw.usage import Usage
from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail, Inject, Reply
from tests.fakes.gemini import FakeGemini

PAYLOADS = Path(__file__).parent / "translate" / "payloads"
TRANSLATED = ["m-anthropic", "m-gemini"]

WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


async def _row(trio: RunningGateway, request_id: str) -> Any:
    rows = await trio.gw.store.reports.by_request_id(request_id)
    assert len(rows) == 1
    return rows[0]


def _fake(model: str, anthropic: FakeAnthropic, gemini: FakeGemini) -> FakeAnthropic | FakeGemini:
    return anthropic if model == "m-anthropic" else gemini


@pytest.mark.parametrize("model", TRANSLATED)
async def test_text_plain_with_usage_and_ledger(
    trio: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
) -> None:
    fake = _fake(model, fake_anthropic, fake_gemini)
    fake.default = Reply(text="Bonjour!", usage=Usage(40, 9, 0, 0, 0))
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.responses.with_raw_response.create(
            model=model,
            instructions="Answer in French.",
            input="Say hello",
            max_output_tokens=100,
            temperature=0.5,
        )
    resp = raw.parse()
    assert resp.output_text == "Bonjour!"
    assert resp.status == "completed" and resp.object == "response"
    assert resp.id.startswith("resp_") and resp.output[0].type == "message"
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (
        40,
        9,
        49,
    )
    assert resp.instructions == "Answer in French." and resp.max_output_tokens == 100
    body = fake.last.body
    if model == "m-anthropic":
        assert body["system"] in (
            "Answer in French.",
            [{"type": "text", "text": "Answer in French."}],
        )
        assert (
            body["messages"] == [{"role": "user", "content": "Say hello"}]
            or body["messages"][0]["role"] == "user"
        )
        assert body["max_tokens"] == 100
    else:
        assert body["systemInstruction"]["parts"][0]["text"] == "Answer in French."
        assert body["generationConfig"]["maxOutputTokens"] == 100
    row = await _row(trio, raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.stream) == ("responses", 200, False)
    assert (row.prompt_tokens, row.completion_tokens) == (40, 9)
    assert row.cost_nusd is not None and row.cost_nusd > 0
    assert raw.headers["x-aigw-cost-usd"]


@pytest.mark.parametrize("model", TRANSLATED)
async def test_text_streamed_event_sequence_and_ledger(
    trio: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
) -> None:
    fake = _fake(model, fake_anthropic, fake_gemini)
    fake.default = Reply(text="one two three four five", usage=Usage(30, 5, 0, 0, 0))
    key = await trio.key()
    async with trio.openai(key) as client:
        events = [
            e async for e in await client.responses.create(model=model, input="count", stream=True)
        ]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "one two three four five"
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == text
    assert done.response.usage is not None
    assert (done.response.usage.input_tokens, done.response.usage.output_tokens) == (30, 5)
    rows = await trio.fetchall(
        "SELECT prompt_tokens, completion_tokens, stream, status, endpoint FROM ledger"
    )
    assert [tuple(r) for r in rows] == [(30, 5, 1, 200, "responses")]


@pytest.mark.parametrize("model", TRANSLATED)
async def test_sdk_stream_helper_gets_the_final_response(
    trio: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
) -> None:
    _fake(model, fake_anthropic, fake_gemini).default = Reply(text="streamed via helper")
    key = await trio.key()
    async with (
        trio.openai(key) as client,
        client.responses.stream(model=model, input="hi") as stream,
    ):
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "streamed via helper" == final.output_text


@pytest.mark.parametrize("model", TRANSLATED)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_round_trip(
    trio: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
    stream: bool,
) -> None:
    fake = _fake(model, fake_anthropic, fake_gemini)
    fake.then(
        Reply(tool_calls=[("get_weather", {"city": "Paris"})], usage=Usage(60, 12)),
        Reply(text="It is sunny in Paris.", usage=Usage(80, 7)),
    )
    key = await trio.key()
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first: Response
    async with trio.openai(key) as client:
        if stream:
            async with client.responses.stream(
                model=model,
                input=history,
                tools=[WEATHER],
            ) as s:
                kinds = [e.type async for e in s]
                first = await s.get_final_response()
            assert "response.function_call_arguments.delta" in kinds
            assert "response.function_call_arguments.done" in kinds
        else:
            first = await client.responses.create(model=model, input=history, tools=[WEATHER])
        calls = [o for o in first.output if o.type == "function_call"]
        assert len(calls) == 1
        call = calls[0]
        assert isinstance(call, ResponseFunctionToolCall)
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
        assert call.call_id and call.id and call.id.startswith("fc_")
        # The documented round trip: append the call item and its output, ask again.
        history += [
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"},
        ]
        second = await client.responses.create(
            model=model, input=history, tools=[WEATHER], stream=False
        )
    assert second.output_text == "It is sunny in Paris."
    sent = fake.last.body
    if model == "m-anthropic":
        assistant, result = sent["messages"][1], sent["messages"][2]
        assert assistant["content"][-1]["type"] == "tool_use"
        assert assistant["content"][-1]["id"] == call.call_id
        assert assistant["content"][-1]["input"] == {"city": "Paris"}
        tool_result = result["content"][0]
        assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == call.call_id
        assert "sunny, 24 C" in json.dumps(tool_result)
        assert sent["tools"][0]["name"] == "get_weather"
    else:
        parts = [p for c in sent["contents"] for p in c["parts"]]
        assert any(p.get("functionCall", {}).get("name") == "get_weather" for p in parts)
        response = next(p["functionResponse"] for p in parts if "functionResponse" in p)
        assert response["name"] == "get_weather"
        assert "sunny, 24 C" in json.dumps(response)
    rows = await trio.fetchall(
        "SELECT prompt_tokens, completion_tokens, stream FROM ledger ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [(60, 12, int(stream)), (80, 7, 0)]


async def test_anthropic_thinking_becomes_a_reasoning_item(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    recorded = json.loads((PAYLOADS / "anthropic" / "anthropic_message_thinking.json").read_text())
    fake_anthropic.then(Fail(200, body=json.dumps(recorded["body"]).encode()))
    key = await trio.key()
    async with trio.openai(key) as client:
        resp = await client.responses.create(
            model="m-anthropic", input="meaning of life?", reasoning={"effort": "medium"}
        )
    assert fake_anthropic.last.body["thinking"]["type"] == "enabled"
    kinds = [o.type for o in resp.output]
    assert kinds == ["reasoning", "message"]
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning"
    assert "Deep Thought" in reasoning.summary[0].text
    assert "42" in resp.output_text


async def test_anthropic_thinking_streamed_as_reasoning_summary_events(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    recorded = json.loads((PAYLOADS / "anthropic" / "anthropic_stream_thinking.json").read_text())
    raw = b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in recorded["events"]
    )
    fake_anthropic.then(Inject(raw, after=0))
    key = await trio.key()
    async with trio.openai(key) as client:
        events = [
            e
            async for e in await client.responses.create(
                model="m-anthropic", input="meaning of life?", stream=True
            )
        ]
    kinds = [e.type for e in events]
    assert "response.reasoning_summary_text.delta" in kinds
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index(
        "response.output_text.delta"
    )
    final = events[-1]
    assert final.type == "response.completed"
    assert [o.type for o in final.response.output] == ["reasoning", "message"]
    assert final.response.usage is not None and final.response.usage.input_tokens == 42


async def test_gemini_reasoning_tokens_reach_usage_and_ledger(
    trio: RunningGateway, fake_gemini: FakeGemini
) -> None:
    fake_gemini.default = Reply(text="ok", usage=Usage(20, 50, 0, 0, 40))
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.responses.with_raw_response.create(
            model="m-gemini", input="think", reasoning={"effort": "low"}
        )
    resp = raw.parse()
    assert resp.usage is not None
    assert resp.usage.output_tokens_details.reasoning_tokens == 40
    assert resp.usage.output_tokens == 50
    assert "thinkingConfig" in fake_gemini.last.body["generationConfig"]
    row = await _row(trio, raw.headers["x-request-id"])
    assert (row.prompt_tokens, row.completion_tokens, row.reasoning_tokens) == (20, 50, 40)


async def test_max_output_tokens_cut_is_incomplete(
    trio: RunningGateway, fake_gemini: FakeGemini
) -> None:
    recorded = json.loads(
        (PAYLOADS / "gemini" / "generate_content_thinking_max_tokens.json").read_text()
    )
    fake_gemini.then(Fail(200, body=json.dumps(recorded["response"]).encode()))
    key = await trio.key()
    async with trio.openai(key) as client:
        resp = await client.responses.create(model="m-gemini", input="long story")
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("model", TRANSLATED)
async def test_stored_state_is_a_clear_400(trio: RunningGateway, model: str) -> None:
    key = await trio.key()
    async with trio.openai(key) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(
                model=model, input="and then?", previous_response_id="resp_abc"
            )
    err = info.value
    assert isinstance(err.body, dict) and err.body["param"] == "previous_response_id"
    assert err.body["type"] == "invalid_request_error"
    assert "stores no responses" in err.body["message"]
    rows = await trio.fetchall("SELECT status FROM ledger")
    assert [tuple(r) for r in rows] == [(400,)]


async def test_dropped_builtin_tools_and_store_are_warned(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.responses.with_raw_response.create(
            model="m-anthropic",
            input="hi",
            store=True,
            tools=[WEATHER, {"type": "web_search"}],
        )
    warning = raw.headers["x-aigw-warning"]
    assert "web_search" in warning and "store was ignored" in warning
    assert [t["name"] for t in fake_anthropic.last.body["tools"]] == ["get_weather"]


async def test_json_schema_text_format_reaches_the_target(
    trio: RunningGateway, fake_gemini: FakeGemini
) -> None:
    fake_gemini.default = Reply(text='{"city": "Paris"}')
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    key = await trio.key()
    async with trio.openai(key) as client:
        resp = await client.responses.create(
            model="m-gemini",
            input="Where?",
            text={
                "format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}
            },
        )
    assert json.loads(resp.output_text) == {"city": "Paris"}
    gen = fake_gemini.last.body["generationConfig"]
    assert gen["responseMimeType"] == "application/json"


async def test_upstream_error_in_openai_envelope(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.then(Fail(429, "slow down"))
    key = await trio.key()
    async with trio.openai(key) as client:
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="m-anthropic", input="hi")


async def test_mock_provider_serves_responses_through_the_hub(trio: RunningGateway) -> None:
    key = await trio.key()
    async with trio.openai(key) as client:
        resp = await client.responses.create(model="mock/echo", input="ping")
        events = [
            e.type
            async for e in await client.responses.create(
                model="mock/echo", input="ping", stream=True
            )
        ]
    assert resp.output_text
    assert events[-1] == "response.completed"


# -- openai-agents, whose default model speaks the Responses API ------------------------


@pytest.mark.parametrize("model", TRANSLATED)
@pytest.mark.parametrize("streamed", [False, True])
async def test_openai_agents_runs_a_tool_loop(
    trio: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
    streamed: bool,
) -> None:
    agents.set_tracing_disabled(True)  # tracing would post to api.openai.com
    fake = _fake(model, fake_anthropic, fake_gemini)
    fake.then(
        Reply(tool_calls=[("get_weather", {"city": "Paris"})], usage=Usage(60, 12)),
        Reply(text="Sunny in Paris.", usage=Usage(90, 5)),
    )
    seen: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        seen.append(city)
        return f"sunny in {city}"

    key = await trio.key()
    async with trio.openai(key) as client:
        agent = agents.Agent(
            name="weather",
            instructions="Use the tool.",
            tools=[get_weather],
            model=agents.OpenAIResponsesModel(model=model, openai_client=client),
        )
        if streamed:
            run = agents.Runner.run_streamed(agent, "Weather in Paris?")
            async for _ in run.stream_events():
                pass
            output = run.final_output
        else:
            output = (await agents.Runner.run(agent, "Weather in Paris?")).final_output
    assert output == "Sunny in Paris."
    assert seen == ["Paris"]
    assert "sunny in Paris" in json.dumps(fake.last.body)
    rows = await trio.fetchall(
        "SELECT prompt_tokens, completion_tokens, stream, endpoint FROM ledger ORDER BY id"
    )
    s = int(streamed)
    assert [tuple(r) for r in rows] == [(60, 12, s, "responses"), (90, 5, s, "responses")]
