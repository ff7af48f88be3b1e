"""Hub completions and chunks -> Responses objects and events, checked against the
openai-python SDK's own models (``Response``, ``ResponseStreamEvent``).

Inputs are recorded payloads (tests/translate/payloads/): OpenAI chat completions and
chunks, and Anthropic and Gemini streams run through their adapters' hub streams, as
the gateway runs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from aigw.providers import anthropic, gemini
from aigw.sse import Event
from aigw.translate.common import JSON
from aigw.translate.responses import ChatToResponsesStream, chat_to_response

PAYLOADS = Path(__file__).parents[1] / "payloads"
EVENT = TypeAdapter[Any](ResponseStreamEvent)
REQUEST: JSON = {"model": "m", "input": "hi", "tools": [], "instructions": "Be brief."}


def load(name: str) -> Any:
    data = json.loads((PAYLOADS / name).read_text())
    assert data["_source"]
    for key in ("body", "response", "chunks", "events"):
        if key in data:
            return data[key]
    raise KeyError(name)


def run(chunks: list[JSON]) -> list[JSON]:
    tr = ChatToResponsesStream(model="m", request=REQUEST)
    events = [e for chunk in chunks for _, e in tr.feed(chunk)] + [e for _, e in tr.finish()]
    for e in events:
        EVENT.validate_python(e)  # every event is one the SDK knows, fields and all
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def final(events: list[JSON]) -> Response:
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    return Response.model_validate(events[-1]["response"])


def test_recorded_text_completion() -> None:
    resp = Response.model_validate(
        chat_to_response(
            load("anthropic/openai_chat_completion_text.json"), model="m", request=REQUEST
        )
    )
    assert resp.status == "completed" and resp.output_text
    assert resp.instructions == "Be brief."
    assert resp.usage is not None and resp.usage.total_tokens > 0


def test_recorded_tool_call_completion_with_reasoning_and_cached_tokens() -> None:
    recorded = load("gemini/openai_chat_completion_tool_calls.json")
    resp = Response.model_validate(chat_to_response(recorded, model="m", request=REQUEST))
    calls = [o for o in resp.output if o.type == "function_call"]
    src = recorded["choices"][0]["message"]["tool_calls"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        (s["id"], s["function"]["name"], s["function"]["arguments"]) for s in src
    ]
    u = recorded["usage"]
    assert resp.usage is not None
    assert resp.usage.input_tokens == u["prompt_tokens"]
    assert resp.usage.output_tokens == u["completion_tokens"]
    assert (
        resp.usage.input_tokens_details.cached_tokens == u["prompt_tokens_details"]["cached_tokens"]
    )
    assert (
        resp.usage.output_tokens_details.reasoning_tokens
        == u["completion_tokens_details"]["reasoning_tokens"]
    )


def test_length_is_incomplete_and_reasoning_content_is_a_reasoning_item() -> None:
    hub = {
        "id": "chatcmpl-1",
        "created": 1,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Once", "reasoning_content": "plan"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    resp = Response.model_validate(chat_to_response(hub, model="m", request=REQUEST))
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert [o.type for o in resp.output] == ["reasoning", "message"]


def test_recorded_openai_text_stream() -> None:
    chunks = load("anthropic/openai_stream_text.json")
    events = run(chunks)
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == text
    resp = final(events)
    assert resp.output_text == text
    assert resp.usage is not None and resp.usage.input_tokens > 0


def test_recorded_openai_tool_call_stream() -> None:
    chunks = load("anthropic/openai_stream_tool_call.json")
    events = run(chunks)
    kinds = [e["type"] for e in events]
    assert (
        kinds.index("response.output_item.added")
        < kinds.index("response.function_call_arguments.delta")
        < kinds.index("response.function_call_arguments.done")
    )
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    streamed = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    assert done["arguments"] == streamed and json.loads(streamed)
    call = next(o for o in final(events).output if o.type == "function_call")
    assert call.arguments == streamed and call.call_id.startswith("call_")


def _through(adapter: Any, events: list[tuple[str | None, JSON]]) -> list[JSON]:
    hub = adapter.hub_stream("m")
    chunks: list[JSON] = []
    for name, data in events:
        raw = orjson.dumps(data)
        head = f"event: {name}\n".encode() if name else b""
        chunks += hub.feed(Event(head + b"data: " + raw, name, raw))
    chunks.append(hub.final_usage_chunk())
    return chunks


def test_recorded_anthropic_thinking_stream_through_the_hub() -> None:
    events = run(
        _through(
            anthropic.ADAPTER, [tuple(e) for e in load("anthropic/anthropic_stream_thinking.json")]
        )
    )
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[3] == "response.reasoning_summary_part.added"
    resp = final(events)
    assert [o.type for o in resp.output] == ["reasoning", "message"]
    assert resp.usage is not None and resp.usage.input_tokens == 42


def test_recorded_anthropic_tool_use_stream_through_the_hub() -> None:
    recorded = load("anthropic/anthropic_stream_tool_use.json")
    resp = final(run(_through(anthropic.ADAPTER, [tuple(e) for e in recorded])))
    src = [
        e[1]["content_block"]
        for e in recorded
        if e[0] == "content_block_start" and e[1]["content_block"]["type"] == "tool_use"
    ]
    calls = [o for o in resp.output if o.type == "function_call"]
    assert [(c.call_id, c.name) for c in calls] == [(b["id"], b["name"]) for b in src]
    assert all(json.loads(c.arguments) is not None for c in calls)


def test_recorded_gemini_parallel_calls_stream_through_the_hub() -> None:
    recorded = load("gemini/stream_gemini3_parallel_calls.json")
    resp = final(run(_through(gemini.ADAPTER, [(None, e) for e in recorded])))
    calls = [o for o in resp.output if o.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Tokyo"]
    assert len({c.call_id for c in calls}) == 2 and len({c.id for c in calls}) == 2
    assert len({o.id for o in resp.output}) == len(resp.output)


def test_an_empty_stream_still_completes() -> None:
    events = run([])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
