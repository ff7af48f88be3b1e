"""Payloads and helpers shared by the Anthropic translator tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from aigw.translate.anthropic import MessagesToChatStream, chat_to_messages_request
from aigw.translate.common import JSON, TranslateOptions

PAYLOADS = Path(__file__).parent.parent / "payloads" / "anthropic"
OPTS = TranslateOptions(upstream_model="claude-sonnet-4-5", strict=True, default_max_tokens=4096)
LENIENT = TranslateOptions(upstream_model="claude-sonnet-4-5", strict=False)
_EVENT = TypeAdapter[Any](RawMessageStreamEvent)
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def load(name: str) -> Any:
    data = json.loads((PAYLOADS / name).read_text())
    assert data["_source"]  # every payload says where it was recorded
    return data.get("body", data.get("events", data.get("chunks")))


def to_anthropic(req: JSON, opts: TranslateOptions = OPTS) -> JSON:
    return chat_to_messages_request(req, opts).body


def user(text: str = "Hi") -> JSON:
    return {"role": "user", "content": text}


def accumulate(events: list[tuple[str, JSON]]) -> Message:
    """Replay our Anthropic events through the SDK's own stream accumulator."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        assert data["type"] == name
        event = _EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump())


def feed_all(
    events: list[list[Any]], model: str = "claude"
) -> tuple[list[JSON], MessagesToChatStream]:
    stream = MessagesToChatStream(model=model)
    chunks = [c for name, data in events for c in stream.feed(name, data)]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    return chunks, stream


def joined(chunks: list[JSON], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def tool_conversation() -> list[JSON]:
    return [
        user("Weather in Paris and Oslo?"),
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12C rain"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": "4C snow"}],
        },
        user("Thanks, and tomorrow?"),
    ]


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
