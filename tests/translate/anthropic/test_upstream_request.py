"""OpenAI chat request (the hub) -> Anthropic Messages request, against recorded payloads.

Outputs are also validated with the official SDKs' own models (``openai`` for hub
results, ``anthropic`` for Anthropic-shaped results), so a shape error fails here.
"""

from __future__ import annotations

import pytest

from aigw.translate.anthropic import DEFAULT_VERSION, JSON_TOOL_NAME, chat_to_messages_request
from aigw.translate.common import JSON, TranslateOptions, TranslationError
from tests.translate.anthropic.helpers import (
    LENIENT,
    OPTS,
    PNG,
    SCHEMA,
    WEATHER_TOOL,
    to_anthropic,
    tool_conversation,
    user,
)


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
