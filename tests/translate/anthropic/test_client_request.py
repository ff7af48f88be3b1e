"""Anthropic client request -> OpenAI chat request (the hub), against recorded payloads.

Outputs are also validated with the official SDKs' own models (``openai`` for hub
results, ``anthropic`` for Anthropic-shaped results), so a shape error fails here.
"""

from __future__ import annotations

import pytest

from aigw.translate import anthropic as tr
from aigw.translate.common import JSON, TranslationError
from tests.translate.anthropic.helpers import (
    PNG,
    SCHEMA,
    WEATHER_TOOL,
    to_anthropic,
    tool_conversation,
    user,
)


def messages_to_chat_request(req: JSON, *, strict: bool = True) -> JSON:
    return tr.messages_to_chat_request(req, strict=strict).body


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
        "reasoning_effort": "medium",
        "thinking": {"type": "enabled", "budget_tokens": 2048},
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
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "system", "content": 3}]}, "messages[0].content"),
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
