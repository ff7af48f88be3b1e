"""OpenAI chat <-> Anthropic Messages translation, checked against recorded payloads.

Outputs are also validated with the official SDKs' own models (``openai`` for hub
results, ``anthropic`` for Anthropic-shaped results), so a shape error fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from aigw.translate.anthropic import (
    DEFAULT_VERSION,
    JSON_TOOL_NAME,
    AnthropicStreamError,
    ChatToMessagesStream,
    MessagesToChatStream,
    chat_to_messages_request,
    chat_to_messages_response,
    messages_to_chat_request,
    messages_to_chat_response,
    parse_anthropic_error,
    usage_from_anthropic,
)
from aigw.translate.common import JSON, TranslateOptions, TranslationError
from aigw.usage import Usage

PAYLOADS = Path(__file__).parent / "payloads" / "anthropic"
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


# -- OpenAI request -> Anthropic request -------------------------------------------------


def test_version_header_value() -> None:
    assert DEFAULT_VERSION == "2023-06-01"


def test_basic_request_hoists_system_and_developer() -> None:
    out = chat_to_messages_request(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                user("Hello"),
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "u-42",
        },
        OPTS,
    )
    assert out.warnings == []
    assert out.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Answer in French."},
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "stream": True,
        "metadata": {"user_id": "u-42"},
    }


def test_single_system_is_a_string_and_cache_control_is_kept() -> None:
    body = to_anthropic({"messages": [{"role": "system", "content": "S"}, user()]})
    assert body["system"] == "S"
    cached = {"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}
    body = to_anthropic({"messages": [{"role": "system", "content": [cached]}, user()]})
    assert body["system"] == [cached]


def test_max_tokens_precedence() -> None:
    assert to_anthropic({"messages": [user()], "max_tokens": 50})["max_tokens"] == 50
    both = {"messages": [user()], "max_tokens": 50, "max_completion_tokens": 70}
    assert to_anthropic(both)["max_tokens"] == 70
    opts = TranslateOptions(upstream_model="m", default_max_tokens=123)
    assert to_anthropic({"messages": [user()]}, opts)["max_tokens"] == 123


def test_multi_turn_merges_same_role_and_strips_prefill() -> None:
    body = to_anthropic(
        {
            "messages": [
                user("a"),
                user("b"),
                {"role": "assistant", "content": "c", "name": "bot"},
                {"role": "assistant", "content": None},
                user(""),
                {"role": "user", "content": "d", "name": "bob"},
                {"role": "assistant", "content": "The answer is "},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        {"role": "user", "content": [{"type": "text", "text": "d"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]},
    ]


def test_images_and_documents() -> None:
    body = to_anthropic(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x.test/a.png", "detail": "high"},
                        },
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": "data:image/jpg;base64,AAAA"},
                        {
                            "type": "file",
                            "file": {
                                "file_data": "data:application/pdf;base64,JVBERi0=",
                                "filename": "a.pdf",
                            },
                        },
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
    ]


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


def test_tools_tool_calls_and_results() -> None:
    body = to_anthropic({"messages": tool_conversation(), "tools": [WEATHER_TOOL]})
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert "tool_choice" not in body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    # Consecutive tool results and the next user text share one user turn, results first.
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "12C rain"},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": [{"type": "text", "text": "4C snow"}],
            },
            {"type": "text", "text": "Thanks, and tomorrow?"},
        ],
    }
    assert len(body["messages"]) == 3


def test_tool_results_move_before_text_in_a_turn() -> None:
    msgs = tool_conversation()
    msgs.insert(2, user("(by the way)"))
    content = to_anthropic({"messages": msgs, "tools": [WEATHER_TOOL]})["messages"][2]["content"]
    assert [b["type"] for b in content] == ["tool_result", "tool_result", "text", "text"]


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    tool = {"type": "function", "function": {"name": "now"}}
    body = to_anthropic({"messages": [user()], "tools": [tool]})
    assert body["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice(choice: object, parallel: bool | None, expected: JSON) -> None:
    req: JSON = {"messages": [user()], "tools": [WEATHER_TOOL], "tool_choice": choice}
    if parallel is not None:
        req["parallel_tool_calls"] = parallel
    assert to_anthropic(req)["tool_choice"] == expected


def test_legacy_functions() -> None:
    body = to_anthropic(
        {
            "messages": [
                user("w?"),
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "get_weather", "arguments": "{}"},
                },
                {"role": "function", "name": "get_weather", "content": "sunny"},
            ],
            "functions": [WEATHER_TOOL["function"]],
            "function_call": {"name": "get_weather"},
        }
    )
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    call = body["messages"][1]["content"][0]
    assert call["type"] == "tool_use"
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"}
    ]


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_json_schema_is_a_forced_tool() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
    body = to_anthropic({"messages": [user()], "response_format": rf})
    assert body["tools"] == [
        {
            "name": JSON_TOOL_NAME,
            "description": body["tools"][0]["description"],
            "input_schema": SCHEMA,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}


def test_json_object_and_text_formats() -> None:
    body = to_anthropic({"messages": [user()], "response_format": {"type": "json_object"}})
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    body = to_anthropic({"messages": [user()], "response_format": {"type": "text"}})
    assert "tools" not in body


def test_json_mode_with_client_tools() -> None:
    rf = {"type": "json_object"}
    body = to_anthropic({"messages": [user()], "tools": [WEATHER_TOOL], "response_format": rf})
    assert [t["name"] for t in body["tools"]] == ["get_weather", JSON_TOOL_NAME]
    assert body["tool_choice"] == {"type": "any"}
    body = to_anthropic(
        {
            "messages": [user()],
            "tools": [WEATHER_TOOL],
            "tool_choice": "none",
            "response_format": rf,
        }
    )
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    # A required tool call is the answer itself: there is nothing to format.
    body = to_anthropic(
        {
            "messages": [user()],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "response_format": rf,
        }
    )
    assert [t["name"] for t in body["tools"]] == ["get_weather"]
    assert body["tool_choice"] == {"type": "any"}


def test_non_object_schema_strict_and_lenient() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}
    with pytest.raises(TranslationError) as e:
        to_anthropic({"messages": [user()], "response_format": rf})
    assert e.value.param == "response_format.json_schema.schema"
    out = chat_to_messages_request({"messages": [user()], "response_format": rf}, LENIENT)
    assert "tools" not in out.body
    assert out.warnings


def test_sampling_parameters() -> None:
    out = chat_to_messages_request(
        {"messages": [user()], "temperature": 1.6, "top_p": 0.9, "stop": "END", "top_k": 5}, OPTS
    )
    assert out.body["temperature"] == 1.0
    assert out.body["top_p"] == 0.9
    assert out.body["top_k"] == 5
    assert out.body["stop_sequences"] == ["END"]
    assert any("temperature" in w for w in out.warnings)
    body = to_anthropic({"messages": [user()], "temperature": 0.3, "stop": ["a", "b"]})
    assert body["temperature"] == 0.3
    assert body["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in to_anthropic({"messages": [user()], "stop": []})


def test_reasoning_effort_maps_to_thinking() -> None:
    out = chat_to_messages_request(
        {"messages": [user()], "reasoning_effort": "medium", "temperature": 0.2}, OPTS
    )
    assert out.body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert out.body["max_tokens"] == 8192  # the default limit leaves room above the budget
    assert "temperature" not in out.body
    assert any("temperature" in w for w in out.warnings)
    body = to_anthropic({"messages": [user()], "reasoning_effort": "high", "max_tokens": 20000})
    assert body["thinking"]["budget_tokens"] == 16384 and body["max_tokens"] == 20000
    # An explicit limit is respected: the budget shrinks to fit.
    body = to_anthropic({"messages": [user()], "reasoning_effort": "high", "max_tokens": 3000})
    assert body["thinking"]["budget_tokens"] == 1500 and body["max_tokens"] == 3000
    assert "thinking" not in to_anthropic({"messages": [user()], "reasoning_effort": "none"})


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": 1000},  # no room above Anthropic's 1024 minimum budget
        {"tools": [WEATHER_TOOL], "tool_choice": "required"},  # forced tool forbids thinking
        {"response_format": {"type": "json_object"}},  # so does the JSON emulation
    ],
)
def test_reasoning_effort_dropped_when_impossible(extra: JSON) -> None:
    out = chat_to_messages_request({"messages": [user()], "reasoning_effort": "low", **extra}, OPTS)
    assert "thinking" not in out.body
    assert any("reasoning_effort" in w for w in out.warnings)


def test_reasoning_effort_dropped_mid_tool_loop() -> None:
    msgs = tool_conversation()[:-1]  # ends with tool results: the loop is still running
    out = chat_to_messages_request(
        {"messages": msgs, "tools": [WEATHER_TOOL], "reasoning_effort": "low"}, OPTS
    )
    assert "thinking" not in out.body
    # A fresh user question starts a new turn: thinking is fine again.
    out = chat_to_messages_request(
        {"messages": tool_conversation(), "tools": [WEATHER_TOOL], "reasoning_effort": "low"}, OPTS
    )
    assert out.body["thinking"]["budget_tokens"] == 1024


def test_benign_parameters_dropped_with_warnings() -> None:
    out = chat_to_messages_request(
        {
            "messages": [user()],
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.1,
            "logit_bias": {"1": 2},
            "service_tier": "auto",
            "store": True,
            "modalities": ["text"],
            "n": 1,
            "logprobs": False,
            "whatever": 1,
        },
        OPTS,
    )
    assert set(out.body) == {"model", "max_tokens", "messages"}
    text = " ".join(out.warnings)
    for name in (
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "service_tier",
        "store",
        "modalities",
        "whatever",
    ):
        assert name in text
    assert len(out.warnings) == 8


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ],
)
def test_meaning_changing_parameters(extra: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        chat_to_messages_request({"messages": [user()], **extra}, OPTS)
    assert e.value.param == param
    out = chat_to_messages_request({"messages": [user()], **extra}, LENIENT)
    assert any(param in w for w in out.warnings)


def test_audio_input_strict_and_lenient() -> None:
    msg = {
        "role": "user",
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
        ],
    }
    with pytest.raises(TranslationError) as e:
        chat_to_messages_request({"messages": [msg]}, OPTS)
    assert e.value.param == "messages[0].content[1]"
    out = chat_to_messages_request({"messages": [msg]}, LENIENT)
    assert out.body["messages"][0]["content"] == [{"type": "text", "text": "hi"}]


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        ({"messages": [{"role": "user", "content": [7]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,xx"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [user(), {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{bad"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "assistant", "tool_calls": "x"}]}, "messages[0].tool_calls"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
            "messages[0].tool_calls[0].id",
        ),
        ({"messages": [user()], "tools": {"a": 1}}, "tools"),
        ({"messages": [user()], "tools": [{"type": "function"}]}, "tools[0].function"),
        (
            {
                "messages": [user()],
                "tools": [{"type": "function", "function": {"description": "x"}}],
            },
            "tools[0].function.name",
        ),
        (
            {
                "messages": [user()],
                "tools": [{"type": "function", "function": {"name": JSON_TOOL_NAME}}],
            },
            "tools[0].function.name",
        ),
        (
            {"messages": [user()], "tools": [WEATHER_TOOL], "tool_choice": "sometimes"},
            "tool_choice",
        ),
        ({"messages": [user()], "tool_choice": "required"}, "tool_choice"),
        ({"messages": [user()], "temperature": "hot"}, "temperature"),
        ({"messages": [user()], "temperature": -1}, "temperature"),
        ({"messages": [user()], "top_p": 3}, "top_p"),
        ({"messages": [user()], "max_tokens": 0}, "max_tokens"),
        ({"messages": [user()], "max_completion_tokens": "9"}, "max_completion_tokens"),
        ({"messages": [user()], "stop": [1]}, "stop"),
        ({"messages": [user()], "n": 0}, "n"),
        ({"messages": [user()], "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"messages": [user()], "response_format": {"type": "yaml"}}, "response_format.type"),
        ({"messages": [user()], "response_format": {"type": "json_schema"}}, "response_format"),
        ({"messages": [user()], "user": 5}, "user"),
        ({"messages": [user()], "stream": "yes"}, "stream"),
    ],
)
def test_malformed_requests_raise_translation_errors(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        chat_to_messages_request(req, OPTS)
    assert e.value.param == param
    assert e.value.message


def test_non_dict_request() -> None:
    with pytest.raises(TranslationError):
        chat_to_messages_request("nope", OPTS)  # type: ignore[arg-type]


# -- Anthropic response -> OpenAI chat completion ----------------------------------------


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
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


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


# -- Anthropic stream -> OpenAI chunks ---------------------------------------------------


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


# -- Anthropic request -> OpenAI request -------------------------------------------------


def test_anthropic_request_to_hub() -> None:
    out = messages_to_chat_request(
        {
            "model": "claude-x",
            "max_tokens": 256,
            "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Look"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [
                                {"type": "text", "text": "12C"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": PNG,
                                    },
                                },
                            ],
                        },
                        {"type": "text", "text": "And?"},
                    ],
                },
            ],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "metadata": {"user_id": "u-1"},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "stream": True,
        }
    )
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert out == {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    image,
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "12C"},
            # OpenAI tool messages are text only: the tool's image follows as user content.
            {"role": "user", "content": [image, {"type": "text", "text": "And?"}]},
        ],
        "max_tokens": 256,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA},
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_anthropic_tool_choice_to_hub(choice: JSON, expected: object) -> None:
    out = messages_to_chat_request(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [user()],
            "tool_choice": choice,
            "tools": [{"name": "get_weather", "input_schema": SCHEMA}],
        }
    )
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_anthropic_request_misc() -> None:
    out = messages_to_chat_request(
        {
            "model": "m",
            "max_tokens": 5,
            "system": "S",
            "messages": [
                user("hi"),
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": "boom",
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0=",
                            },
                        },
                    ],
                },
            ],
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                        "filename": "document.pdf",
                    },
                },
            ],
        },
    ]
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }
    assert "stream" not in out


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages[0].content[0].tool_use_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages[0].content[0].source.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": 1}],
                    }
                ]
            },
            "messages[0].content[0].input",
        ),
        (
            {
                "messages": [user()],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0].type",
        ),
        ({"messages": [user()], "tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"messages": [user()], "tool_choice": {"type": "maybe"}}, "tool_choice"),
        ({"messages": [user()], "mcp_servers": [{"url": "https://x"}]}, "mcp_servers"),
        ({"messages": [user()], "system": 5}, "system"),
        ({"messages": [user()], "max_tokens": -1}, "max_tokens"),
    ],
)
def test_malformed_anthropic_requests(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        messages_to_chat_request({"model": "m", **req})
    assert e.value.param == param


def test_round_trip_keeps_the_conversation() -> None:
    hub = {
        "model": "x",
        "messages": [{"role": "system", "content": "S"}, *tool_conversation()],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "max_tokens": 100,
        "stop": ["END"],
    }
    back = messages_to_chat_request(to_anthropic(hub))
    assert back["messages"][0] == {"role": "system", "content": "S"}
    assert back["messages"][1] == {
        "role": "user",
        "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}],
    }
    assert back["messages"][2]["tool_calls"] == hub["messages"][2]["tool_calls"]  # type: ignore[index]
    assert [m["role"] for m in back["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "user",
    ]
    assert back["messages"][4]["content"] == "4C snow"
    assert back["tools"] == [WEATHER_TOOL]
    assert (back["tool_choice"], back["max_tokens"], back["stop"]) == ("required", 100, ["END"])


# -- OpenAI response -> Anthropic response -----------------------------------------------


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


# -- OpenAI chunks -> Anthropic stream ---------------------------------------------------


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


# -- errors ------------------------------------------------------------------------------


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
