"""Anthropic message, stream and error body -> OpenAI chat, against recorded payloads.

Outputs are also validated with the official SDKs' own models (``openai`` for hub
results, ``anthropic`` for Anthropic-shaped results), so a shape error fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aigw.translate.anthropic import (
    JSON_TOOL_NAME,
    AnthropicStreamError,
    MessagesToChatStream,
    messages_to_chat_response,
    parse_anthropic_error,
    usage_from_anthropic,
)
from aigw.translate.common import TranslationError
from aigw.usage import Usage
from tests.translate.anthropic.helpers import feed_all, joined, load


def test_text_response_with_cache_write() -> None:
    out = messages_to_chat_response(load("anthropic_message_text_cache.json"), model="my-claude")
    ChatCompletion.model_validate(out)
    assert out["id"] == "chatcmpl-msg_01Rj9wPB45vxKYRfoZj5KkMA"
    assert out["object"] == "chat.completion"
    assert out["model"] == "my-claude"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"].startswith("I apologize")
    assert "tool_calls" not in choice["message"]
    # input_tokens (4) excludes the 1676 written to the cache; prompt_tokens counts both.
    assert out["usage"]["prompt_tokens"] == 1680
    assert out["usage"]["completion_tokens"] == 132
    assert out["usage"]["total_tokens"] == 1812
    # The writes are shown where OpenAI reports its own (issue 9 item 6).
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 1676}


def test_tool_use_response() -> None:
    out = messages_to_chat_response(load("anthropic_message_tool_use.json"), model="m")
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"].startswith("To answer your questions")
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_01VAqJ7KsLmVcshpji8zXzHr",
            "type": "function",
            "function": {
                "name": "search",
                "arguments": '{"query":"Detroit Tigers game schedule today"}',
            },
        }
    ]


def test_thinking_response_surfaces_reasoning_content() -> None:
    out = messages_to_chat_response(load("anthropic_message_thinking.json"), model="m")
    msg = out["choices"][0]["message"]
    assert msg["content"].startswith("In popular fiction")
    assert msg["reasoning_content"].startswith("This is a reference")
    assert "signature" not in json.dumps(out)


def test_json_mode_response_becomes_content() -> None:
    resp = load("anthropic_message_tool_use.json")
    resp["content"] = [
        {"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL_NAME, "input": {"city": "Paris"}}
    ]
    out = messages_to_chat_response(resp, model="m")
    choice = out["choices"][0]
    assert choice["message"]["content"] == '{"city":"Paris"}'
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    resp = load("anthropic_message_tool_use.json")
    resp["stop_reason"] = stop
    assert messages_to_chat_response(resp, model="m")["choices"][0]["finish_reason"] == finish


def test_usage_with_cache_reads_and_thinking() -> None:
    raw = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100,
        "output_tokens": 40,
        "output_tokens_details": {"thinking_tokens": 25},
    }
    assert usage_from_anthropic(raw) == Usage(
        prompt_tokens=115,
        completion_tokens=40,
        cached_tokens=100,
        cache_write_tokens=5,
        reasoning_tokens=25,
    )
    assert usage_from_anthropic(None) is None
    assert usage_from_anthropic({"input_tokens": True}) == Usage()
    resp = load("anthropic_message_text_cache.json")
    resp["usage"] = raw
    usage = messages_to_chat_response(resp, model="m")["usage"]
    assert usage["prompt_tokens"] == 115
    assert usage["prompt_tokens_details"]["cached_tokens"] == 100
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 25


def test_malformed_anthropic_response() -> None:
    with pytest.raises(TranslationError):
        messages_to_chat_response({"type": "message"}, model="m")


def test_stream_text() -> None:
    chunks, stream = feed_all(load("anthropic_stream_text.json"))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["id"] == "chatcmpl-msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK"
    assert joined(chunks, "content") == "Hello there!"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) == 1
    assert stream.usage == Usage(prompt_tokens=11, completion_tokens=6)
    final = stream.final_usage_chunk()
    ChatCompletionChunk.model_validate(final)
    assert final["choices"] == []
    assert final["usage"]["total_tokens"] == 17


def test_stream_tool_call_arguments() -> None:
    chunks, stream = feed_all(load("anthropic_stream_tool_use.json"))
    assert joined(chunks, "content") == "I'll check the current weather in Paris for you."
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(tc) == {"index", "function"} and tc["index"] == 0 for tc in calls[1:])
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"location": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage.prompt_tokens == 377 and stream.usage.completion_tokens == 65


def test_stream_two_tools_get_separate_indexes() -> None:
    events = load("anthropic_stream_tool_use.json")
    head = next(e for e in events if e[0] == "content_block_start" and e[1]["index"] == 1)
    second = json.loads(json.dumps(head))
    second[1]["index"] = 2
    second[1]["content_block"]["id"] = "toolu_2"
    delta = [
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
    ]
    at = next(i for i, e in enumerate(events) if e[0] == "message_delta")
    events[at:at] = [second, delta]
    chunks, _ = feed_all(events)
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [tc["index"] for tc in calls if "id" in tc] == [0, 1]
    assert calls[-1] == {"index": 1, "function": {"arguments": "{}"}}


def test_stream_thinking() -> None:
    chunks, stream = feed_all(load("anthropic_stream_thinking.json"))
    assert (
        joined(chunks, "reasoning_content") == "This is a very deep and philosophical question that"
    )
    assert joined(chunks, "content").startswith("This question has intrigued")
    assert "signature" not in json.dumps(chunks)
    assert stream.usage.completion_tokens == 289


def test_stream_json_mode() -> None:
    events: list[list[Any]] = [
        [
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_1", "usage": {"input_tokens": 9, "output_tokens": 1}},
            },
        ],
        [
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": JSON_TOOL_NAME,
                    "input": {},
                },
            },
        ],
        [
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
            },
        ],
        [
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ],
        ["content_block_stop", {"type": "content_block_stop", "index": 0}],
        [
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 12},
            },
        ],
        ["message_stop", {"type": "message_stop"}],
    ]
    chunks, stream = feed_all(events)
    assert joined(chunks, "content") == '{"city": "Paris"}'
    assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream.usage.completion_tokens == 12


def test_stream_usage_is_cumulative_and_exact() -> None:
    stream = MessagesToChatStream(model="m")
    stream.feed(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "usage": {
                    "input_tokens": 3,
                    "cache_read_input_tokens": 200,
                    "cache_creation_input_tokens": 7,
                    "output_tokens": 1,
                },
            },
        },
    )
    stream.feed(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {
                "output_tokens": 30,
                "cache_read_input_tokens": None,
                "output_tokens_details": {"thinking_tokens": 10},
            },
        },
    )
    assert stream.usage == Usage(
        prompt_tokens=210,
        completion_tokens=30,
        cached_tokens=200,
        cache_write_tokens=7,
        reasoning_tokens=10,
    )
    assert stream.final_usage_chunk()["usage"]["prompt_tokens_details"]["cached_tokens"] == 200


def test_stream_error_event_raises() -> None:
    stream = MessagesToChatStream(model="m")
    with pytest.raises(AnthropicStreamError) as e:
        stream.feed(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    assert (e.value.message, e.value.error_type) == ("Overloaded", "overloaded_error")


def test_stream_ignores_noise() -> None:
    stream = MessagesToChatStream(model="m")
    assert stream.feed("ping", {"type": "ping"}) == []
    assert stream.feed("message_start", "garbage") == []  # type: ignore[arg-type]
    # A missing event name falls back to the data's type.
    assert (
        stream.feed("", {"type": "message_start", "message": {"id": "msg_x"}})[0]["id"]
        == "chatcmpl-msg_x"
    )


def test_parse_anthropic_error() -> None:
    body = json.dumps(load("anthropic_error.json")).encode()
    assert parse_anthropic_error(body) == (
        "The requested resource could not be found.",
        "not_found_error",
    )
    assert parse_anthropic_error(b"<html>502 Bad Gateway</html>") == (
        "<html>502 Bad Gateway</html>",
        None,
    )
    assert parse_anthropic_error(b"")[1] is None
    assert parse_anthropic_error(b'{"error": "nope"}') == ("nope", None)
    assert parse_anthropic_error(b'{"error": {"type": 3}}') == ("unknown upstream error", None)
    assert parse_anthropic_error(b"[1, 2]") == ("[1, 2]", None)
    assert parse_anthropic_error(b"\xff\xfe")[1] is None
