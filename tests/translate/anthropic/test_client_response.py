"""OpenAI chat completion and chunks -> Anthropic message and events.

Outputs are also validated with the official SDKs' own models (``openai`` for hub
results, ``anthropic`` for Anthropic-shaped results), so a shape error fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message

from aigw.translate.anthropic import ChatToMessagesStream, chat_to_messages_response
from aigw.translate.common import JSON, TranslationError
from tests.translate.anthropic.helpers import accumulate, load


def test_openai_text_completion_to_anthropic() -> None:
    out = chat_to_messages_response(load("openai_chat_completion_text.json"), model="claude-alias")
    Message.model_validate(out)
    assert out["id"] == "msg_9blYknv9rHvr2dvCQKMeW21hlBpCX"
    assert out["content"] == [{"type": "text", "text": "How can I assist you today?"}]
    assert out["stop_reason"] == "end_turn"
    assert out["model"] == "claude-alias"
    assert out["usage"] == {
        "input_tokens": 13,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 26,
    }


def test_openai_tool_completion_to_anthropic() -> None:
    out = chat_to_messages_response(load("openai_chat_completion_tool_call.json"), model="m")
    Message.model_validate(out)
    assert out["content"] == [
        {"type": "tool_use", "id": "call_UDVnXMRxw25rQHFPtdQtjfA7", "name": "TurnOn", "input": {}}
    ]
    assert out["stop_reason"] == "tool_use"


def test_openai_cached_tokens_and_finish_reasons() -> None:
    resp = load("openai_chat_completion_text.json")
    resp["usage"] = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 80},
    }
    usage = chat_to_messages_response(resp, model="m")["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (20, 80)
    for finish, stop in [
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "tool_use"),
    ]:
        resp["choices"][0]["finish_reason"] = finish
        assert chat_to_messages_response(resp, model="m")["stop_reason"] == stop
    resp["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "I can't."}
    out = chat_to_messages_response(resp, model="m")
    assert (out["content"], out["stop_reason"]) == (
        [{"type": "text", "text": "I can't."}],
        "refusal",
    )


def test_openai_bad_arguments_stay_visible() -> None:
    resp = load("openai_chat_completion_tool_call.json")
    resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{oops"
    block = chat_to_messages_response(resp, model="m")["content"][0]
    assert block["input"] == {"arguments": "{oops"}
    with pytest.raises(TranslationError):
        chat_to_messages_response({"choices": []}, model="m")


def convert_chunks(chunks: list[JSON], **kw: Any) -> list[tuple[str, JSON]]:
    stream = ChatToMessagesStream(model="claude-alias", **kw)
    events = [e for c in chunks for e in stream.feed(c)]
    events += stream.finish()
    assert stream.finish() == []  # idempotent
    return events


def test_openai_text_stream_to_anthropic() -> None:
    events = convert_chunks(load("openai_stream_text.json"), input_tokens=15)
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert events[0][1]["message"]["usage"]["input_tokens"] == 15  # the estimate
    msg = accumulate(events)
    assert msg.id == "msg_BQadcZbvmcHdEiJlKyhlXR9mrGXaB"
    assert (
        msg.content[0].type == "text"
        and msg.content[0].text == "Hello! How can I assist you today?"
    )
    assert msg.stop_reason == "end_turn"
    # The usage chunk after finish_reason carries the exact counts.
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (19, 10)


def test_openai_tool_stream_to_anthropic() -> None:
    events = convert_chunks(load("openai_stream_tool_call.json"))
    msg = accumulate(events)
    assert len(msg.content) == 1
    block = msg.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == (
        "call_PieqNSej6kM9hgYbcQdbZSaC",
        "get_weather",
        {"location": "Tokyo"},
    )
    assert msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == 31


def test_openai_stream_text_then_tools_and_no_usage() -> None:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "g"}

    def chunk(delta: JSON, finish: str | None = None) -> JSON:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [
        chunk({"role": "assistant", "content": "Sure. "}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "a", "arguments": '{"x":'},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "b", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    events = convert_chunks(chunks)
    starts = [d["index"] for n, d in events if n == "content_block_start"]
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    msg = accumulate(events)
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    assert msg.content[1].input == {"x": 1}  # type: ignore[union-attr]
    assert msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == 0  # no usage chunk upstream


def test_empty_openai_stream_still_closes() -> None:
    events = convert_chunks([])
    assert [n for n, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert accumulate(events).content == []


def test_usage_in_the_finish_chunk_ends_immediately() -> None:
    stream = ChatToMessagesStream(model="m")
    chunk = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2},
    }
    events = stream.feed(chunk)
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert stream.finish() == []
    assert stream.feed(chunk) == []
