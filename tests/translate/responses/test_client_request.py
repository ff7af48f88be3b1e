"""Responses request -> hub, and on through every target's request translator.

The Codex CLI bodies are captured from the real CLI (tests/fixtures/codex/); the
others follow the openai-python SDK's request types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigw.providers import anthropic, gemini, mock, openai
from aigw.providers.base import ProviderAdapter
from aigw.translate.common import JSON, TranslateOptions, TranslationError
from aigw.translate.responses import responses_to_chat_request

CODEX = Path(__file__).parents[2] / "fixtures" / "codex"
ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": openai.ADAPTER,
    "anthropic": anthropic.ADAPTER,
    "gemini": gemini.ADAPTER,
    "mock": mock.ADAPTER,
}
MODELS = {
    "openai": "gpt-5",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "mock": "echo",
}


def codex(name: str) -> JSON:
    data: Any = json.loads((CODEX / name).read_text())
    assert data["_source"].startswith("Captured from the real Codex CLI")
    body: JSON = data["body"]
    return body


def hub(req: JSON) -> JSON:
    out, _ = responses_to_chat_request(req)
    return out


# -- Codex CLI's real requests, through every path -----------------------------------


@pytest.mark.parametrize("target", sorted(ADAPTERS))
@pytest.mark.parametrize("name", ["turn1_request.json", "turn2_tool_result_request.json"])
def test_codex_requests_translate_for_every_target_in_strict_mode(name: str, target: str) -> None:
    body, warnings = responses_to_chat_request(codex(name))
    # Codex always offers OpenAI-only tools: they are dropped and named, never a 400.
    assert any("web_search" in w and "multi_agent_v1" in w for w in warnings)
    assert not any("unknown parameter" in w for w in warnings), warnings
    opts = TranslateOptions(MODELS[target], strict=True, default_max_tokens=4096)
    translated = ADAPTERS[target].from_hub(body, opts)
    assert translated.body


def test_codex_turn1_becomes_system_and_user_messages_with_function_tools() -> None:
    req = codex("turn1_request.json")
    out = hub(req)
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "system", "user", "user"]
    assert out["messages"][0]["content"].startswith("You are a coding agent running in the Codex")
    assert out["messages"][-1] == {"role": "user", "content": "Run echo hi"}
    names = [t["function"]["name"] for t in out["tools"]]
    assert "exec_command" in names and "web_search" not in names
    assert all(t["type"] == "function" for t in out["tools"])
    assert out["tool_choice"] == "auto" and "parallel_tool_calls" not in out
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    # Codex asks for reasoning summaries only, no effort: nothing to translate.
    assert "reasoning_effort" not in out


def test_codex_turn2_carries_the_tool_round_trip() -> None:
    out = hub(codex("turn2_tool_result_request.json"))
    assistant, tool = out["messages"][-2:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "exec_command", "arguments": '{"cmd": "echo hi"}'},
            }
        ],
    }
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1"
    assert "hi" in tool["content"]


def test_codex_turn2_reaches_anthropic_as_tool_use_and_tool_result() -> None:
    opts = TranslateOptions("claude-sonnet-4-5")
    body = anthropic.ADAPTER.from_hub(hub(codex("turn2_tool_result_request.json")), opts).body
    assert "You are a coding agent" in json.dumps(body["system"])
    use = body["messages"][-2]["content"][-1]
    result = body["messages"][-1]["content"][0]
    assert (use["type"], use["id"], use["input"]) == ("tool_use", "call_1", {"cmd": "echo hi"})
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "call_1")


def test_codex_turn2_reaches_gemini_as_function_call_and_response() -> None:
    opts = TranslateOptions("gemini-2.5-flash")
    body = gemini.ADAPTER.from_hub(hub(codex("turn2_tool_result_request.json")), opts).body
    parts = [p for c in body["contents"] for p in c["parts"]]
    call = next(p["functionCall"] for p in parts if "functionCall" in p)
    response = next(p["functionResponse"] for p in parts if "functionResponse" in p)
    assert call["name"] == response["name"] == "exec_command"
    assert call["args"] == {"cmd": "echo hi"}
    assert "You are a coding agent" in body["systemInstruction"]["parts"][0]["text"]


def test_openai_target_without_responses_gets_max_completion_tokens() -> None:
    out = hub({"model": "m", "input": "hi", "max_output_tokens": 50})
    body = openai.ADAPTER.from_hub(out, TranslateOptions("gpt-5")).body
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


# -- field by field ------------------------------------------------------------------


def test_string_input_and_instructions() -> None:
    out = hub({"model": "m", "input": "hi", "instructions": "Be brief."})
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_items_with_images_files_and_assistant_text() -> None:
    out = hub(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AAAA",
                            "detail": "low",
                        },
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBE",
                            "filename": "a.pdf",
                        },
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "A cat.", "annotations": []}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
                {"role": "developer", "content": "Answer tersely."},
                {"role": "user", "content": "Sure?"},
            ],
        }
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                },
            ],
        },
        {"role": "assistant", "content": "A cat."},
        {"role": "system", "content": "Answer tersely."},
        {"role": "user", "content": "Sure?"},
    ]


def test_parallel_calls_join_one_assistant_message_and_outputs_follow() -> None:
    out = hub(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "Paris and Tokyo?"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking."}],
                },
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "w",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "w",
                    "arguments": '{"city":"Tokyo"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [
                        {"type": "input_text", "text": "rain"},
                        {"type": "input_image", "image_url": "https://example.com/radar.png"},
                    ],
                },
            ],
        }
    )
    _user, assistant, t1, t2, image = out["messages"]
    assert assistant["content"] == "Checking."
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert t1 == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert t2 == {"role": "tool", "tool_call_id": "c2", "content": "rain"}
    assert image["role"] == "user" and image["content"][0]["type"] == "image_url"


def test_settings_map_to_the_hub() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = hub(
        {
            "model": "m",
            "input": "hi",
            "max_output_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {
                "format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}
            },
            "tools": [{"type": "function", "name": "f", "parameters": schema, "strict": True}],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
            "user": "alice",
        }
    )
    assert out["max_tokens"] == 64 and out["temperature"] == 0.2 and out["top_p"] == 0.9
    assert out["reasoning_effort"] == "high"
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": schema, "strict": True},
    }
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["parallel_tool_calls"] is False and out["user"] == "alice"


def test_json_object_and_plain_text_formats() -> None:
    assert hub({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"
    ] == {"type": "json_object"}
    assert "response_format" not in hub(
        {"model": "m", "input": "x", "text": {"format": {"type": "text"}}}
    )


def test_effort_none_sends_no_reasoning() -> None:
    assert "reasoning_effort" not in hub(
        {"model": "m", "input": "x", "reasoning": {"effort": "none"}}
    )


def test_store_and_metadata_are_warned() -> None:
    _, warnings = responses_to_chat_request(
        {"model": "m", "input": "x", "store": True, "metadata": {"a": "b"}, "frobnicate": 1}
    )
    assert any("store was ignored" in w for w in warnings)
    assert any("metadata was ignored" in w for w in warnings)
    assert any("'frobnicate'" in w for w in warnings)


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "x", "background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "x", "tools": [{"type": "teleport"}]}, "tools[0].type"),
        (
            {"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "required"},
            "tool_choice",
        ),
        (
            {
                "input": "x",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "function", "name": "g"},
            },
            "tool_choice.name",
        ),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "temperature": "hot"}, "temperature"),
        ({"input": "x", "reasoning": "high"}, "reasoning"),
        ({"input": 5}, "input"),
        ({}, "input"),
        ({"input": [], "instructions": "only a system prompt"}, "input"),
    ],
)
def test_what_cannot_be_translated_is_a_clear_error(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as info:
        responses_to_chat_request({"model": "m", **req})
    assert info.value.param == param
