"""Tests for aigw.translate.gemini against recorded Gemini and OpenAI payloads."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from google.genai import types as gtypes
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aigw.translate.common import TranslateOptions, TranslationError
from aigw.translate.gemini import (
    SKIP_SIGNATURE,
    ChatToGeminiStream,
    GeminiToChatStream,
    chat_to_gemini_request,
    chat_to_gemini_response,
    embeddings_to_gemini_request,
    gemini_to_chat_request,
    gemini_to_chat_response,
    gemini_to_embeddings_response,
    parse_gemini_error,
    sse_event,
    usage_from_gemini,
)
from aigw.usage import Usage

PAYLOADS = Path(__file__).parent / "payloads" / "gemini"
JSON = dict[str, Any]


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def opts(model: str = "gemini-2.5-flash", strict: bool = True) -> TranslateOptions:
    return TranslateOptions(upstream_model=model, strict=strict)


def to_gemini(req: JSON, model: str = "gemini-2.5-flash", strict: bool = True) -> JSON:
    return chat_to_gemini_request(req, opts(model, strict)).body


def user(content: Any) -> JSON:
    return {"role": "user", "content": content}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


# -- OpenAI request -> Gemini request ---------------------------------------------------


def test_messages_roles_system_and_merging() -> None:
    body = to_gemini(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                user("Hi"),
                user([{"type": "text", "text": "How are you?"}]),
                {"role": "assistant", "content": "Bien."},
                {"role": "assistant", "content": [{"type": "text", "text": " Et vous?"}]},
                user("Fine"),
            ],
        }
    )
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "How are you?"}]},
        {"role": "model", "parts": [{"text": "Bien."}, {"text": " Et vous?"}]},
        {"role": "user", "parts": [{"text": "Fine"}]},
    ]
    assert "model" not in body  # the model goes in the URL


def test_generation_config_mapping() -> None:
    t = chat_to_gemini_request(
        {
            "messages": [user("x")],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 10,
            "max_completion_tokens": 300,
            "n": 2,
            "stop": "END",
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        opts(),
    )
    assert t.body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 300,
        "candidateCount": 2,
        "stopSequences": ["END"],
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }
    assert t.warnings == []
    assert "generationConfig" not in to_gemini({"messages": [user("x")], "n": 1, "stop": []})


def test_top_k_and_tool_choice_without_tools() -> None:
    body = to_gemini({"messages": [user("x")], "top_k": 40, "tool_choice": "none"})
    assert body["generationConfig"] == {"topK": 40}
    assert "toolConfig" not in body


def test_images_audio_and_files() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    body = to_gemini(
        {
            "messages": [
                user(
                    [
                        {"type": "text", "text": "Compare"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{png}", "detail": "high"},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/cat.webp?x=1"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "wav"},
                        },
                        {
                            "type": "file",
                            "file": {
                                "filename": "a.pdf",
                                "file_data": "data:application/pdf;base64,JVBERi0=",
                            },
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:text/plain,hello%20world"},
                        },
                    ]
                )
            ]
        }
    )
    assert body["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {
            "inlineData": {
                "mimeType": "text/plain",
                "data": base64.b64encode(b"hello world").decode(),
            }
        },
    ]


def test_file_id_and_bad_data_url_are_errors() -> None:
    with pytest.raises(TranslationError) as e:
        to_gemini({"messages": [user([{"type": "file", "file": {"file_id": "file-abc"}}])]})
    assert e.value.param == "messages[0].content[0].file.file_id"
    with pytest.raises(TranslationError) as e:
        to_gemini(
            {
                "messages": [
                    user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}])
                ]
            }
        )
    assert e.value.param == "messages[0].content[0].image_url.url"


def test_tools_use_json_schema_dialect() -> None:
    body = to_gemini(
        {"messages": [user("weather?")], "tools": [WEATHER_TOOL], "tool_choice": "auto"}
    )
    decl = body["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["description"] == "Weather for a city"
    # $schema goes; additionalProperties (rejected by the OpenAPI dialect) stays.
    assert decl["parametersJsonSchema"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
        "additionalProperties": False,
    }
    assert "parameters" not in decl
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    odd = {"type": "object", "properties": {"$schema": {"type": "string"}}}
    odd_tool = {"type": "function", "function": {"name": "f", "parameters": odd}}
    kept = to_gemini({"messages": [user("x")], "tools": [odd_tool]})
    assert kept["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == odd
    no_params = {"type": "function", "function": {"name": "now"}}
    assert to_gemini({"messages": [user("x")], "tools": [no_params]})["tools"] == [
        {"functionDeclarations": [{"name": "now"}]}
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: JSON) -> None:
    body = to_gemini({"messages": [user("x")], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_allowed_tools_auto_hides_other_tools() -> None:
    other = {"type": "function", "function": {"name": "other"}}
    body = to_gemini(
        {
            "messages": [user("x")],
            "tools": [WEATHER_TOOL, other],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "other"}}],
                },
            },
        }
    )
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == ["other"]
    assert body["toolConfig"]["functionCallingConfig"] == {"mode": "AUTO"}


def tool_conversation() -> list[JSON]:
    return [
        user("Weather in Paris and Tokyo?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "noon"}]},
        user("Thanks"),
    ]


def test_tool_calls_and_results() -> None:
    body = to_gemini({"messages": tool_conversation()})
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Tokyo?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        # Parallel results share one user turn, as Gemini requires.
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": {"temp": 21}}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                {"text": "Thanks"},
            ],
        },
    ]


def test_tool_name_comes_from_the_closest_earlier_call() -> None:
    # call_0 is reused across turns (Gemini-generated ids restart in every response).
    def turn(name: str) -> list[JSON]:
        return [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": name, "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "ok"},
        ]

    body = to_gemini({"messages": [user("go"), *turn("first"), *turn("second")]})
    responses = [
        p["functionResponse"]["name"]
        for c in body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]
    assert responses == ["first", "second"]


def test_unknown_tool_call_id_is_an_error() -> None:
    with pytest.raises(TranslationError) as e:
        to_gemini(
            {"messages": [user("x"), {"role": "tool", "tool_call_id": "nope", "content": "1"}]}
        )
    assert e.value.param == "messages[1].tool_call_id"


def test_thought_signature_round_trip_and_gemini3_sentinel() -> None:
    resp = gemini_to_chat_response(
        load("generate_content_function_call.json")["response"], model="m"
    )
    assistant = resp["choices"][0]["message"]
    sig = assistant["tool_calls"][0]["extra_content"]["google"]["thought_signature"]
    messages = [
        user("weather?"),
        assistant,
        {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "sunny"},
    ]
    body = to_gemini({"messages": messages}, model="gemini-3-pro-preview")
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == sig

    unsigned = [
        user("x"),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
    ]
    parts = to_gemini({"messages": unsigned}, model="models/gemini-3-flash-preview")["contents"][1][
        "parts"
    ]
    assert parts[0]["thoughtSignature"] == SKIP_SIGNATURE and "thoughtSignature" not in parts[1]
    parts = to_gemini({"messages": unsigned}, model="gemini-2.5-flash")["contents"][1]["parts"]
    assert all("thoughtSignature" not in p for p in parts)


def test_response_format() -> None:
    body = to_gemini({"messages": [user("x")], "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = to_gemini(
        {
            "messages": [user("x")],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "strict": True, "schema": schema},
            },
        }
    )
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert "generationConfig" not in to_gemini(
        {"messages": [user("x")], "response_format": {"type": "text"}}
    )
    with pytest.raises(TranslationError) as e:
        to_gemini({"messages": [user("x")], "response_format": {"type": "json_schema"}})
    assert e.value.param == "response_format.json_schema"


@pytest.mark.parametrize(
    ("model", "effort", "config", "warns"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}, False),
        ("gemini-2.5-flash", "minimal", {"thinkingBudget": 512}, False),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}, False),
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192}, False),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576}, False),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}, True),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium"}, False),
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "minimal"}, True),
        ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low"}, False),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high"}, False),
        ("gemini-3.1-pro-preview", "xhigh", {"thinkingLevel": "high"}, False),
    ],
)
def test_reasoning_effort(model: str, effort: str, config: JSON, warns: bool) -> None:
    t = chat_to_gemini_request({"messages": [user("x")], "reasoning_effort": effort}, opts(model))
    assert t.body["generationConfig"]["thinkingConfig"] == config
    assert bool(t.warnings) == warns


def test_reasoning_effort_unknown_value() -> None:
    with pytest.raises(TranslationError) as e:
        to_gemini({"messages": [user("x")], "reasoning_effort": "max"})
    assert e.value.param == "reasoning_effort"


def test_logprobs() -> None:
    body = to_gemini({"messages": [user("x")], "logprobs": True, "top_logprobs": 3})
    assert body["generationConfig"] == {"responseLogprobs": True, "logprobs": 3}
    with pytest.raises(TranslationError):
        to_gemini({"messages": [user("x")], "top_logprobs": 3})


def test_benign_parameters_warn_even_when_strict() -> None:
    t = chat_to_gemini_request(
        {
            "messages": [user("x")],
            "user": "u1",
            "logit_bias": {"1": 2},
            "service_tier": "auto",
            "store": True,
            "metadata": {"a": "b"},
            "parallel_tool_calls": False,
        },
        opts(strict=True),
    )
    assert len(t.warnings) == 6
    assert any("'logit_bias' was dropped" in w for w in t.warnings)
    assert any("parallel_tool_calls" in w for w in t.warnings)
    assert (
        chat_to_gemini_request(
            {"messages": [user("x")], "parallel_tool_calls": True}, opts()
        ).warnings
        == []
    )


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ],
)
def test_meaning_changing_parameters_strict_vs_lenient(extra: JSON, param: str) -> None:
    req = {"messages": [user("x")], **extra}
    with pytest.raises(TranslationError) as e:
        chat_to_gemini_request(req, opts(strict=True))
    assert e.value.param == param
    t = chat_to_gemini_request(req, opts(strict=False))
    assert len(t.warnings) == 1 and param in t.warnings[0]
    assert t.body["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]


def test_unsupported_content_part_strict_vs_lenient() -> None:
    req = {"messages": [user([{"type": "text", "text": "a"}, {"type": "video", "video": {}}])]}
    with pytest.raises(TranslationError) as e:
        chat_to_gemini_request(req, opts(strict=True))
    assert e.value.param == "messages[0].content[1]"
    assert chat_to_gemini_request(req, opts(strict=False)).body["contents"][0]["parts"] == [
        {"text": "a"}
    ]


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [user(5)]}, "messages[0].content"),
        ({"messages": [user([5])]}, "messages[0].content[0]"),
        ({"messages": [user([{"type": "text"}])]}, "messages[0].content[0].text"),
        ({"messages": [user([{"type": "image_url"}])]}, "messages[0].content[0].image_url"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        (
            {"messages": [{"role": "system", "content": [{"type": "image_url"}]}, user("x")]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [user("x"), {"role": "assistant", "tool_calls": {}}]},
            "messages[1].tool_calls",
        ),
        (
            {"messages": [user("x"), {"role": "assistant", "tool_calls": [{"function": {}}]}]},
            "messages[1].tool_calls[0].function",
        ),
        (
            {
                "messages": [
                    user("x"),
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "1", "function": {"name": "f", "arguments": "{not json"}}
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [
                    user("x"),
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "1", "function": {"name": "f", "arguments": "[1, 2]"}}
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"messages": [user("x")], "temperature": "hot"}, "temperature"),
        ({"messages": [user("x")], "max_tokens": 1.5}, "max_tokens"),
        ({"messages": [user("x")], "stop": [1]}, "stop"),
        ({"messages": [user("x")], "tools": {}}, "tools"),
        ({"messages": [user("x")], "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"messages": [user("x")], "tool_choice": "sometimes"}, "tool_choice"),
        ({"messages": [user("x")], "response_format": {"type": "yaml"}}, "response_format"),
        ({"messages": [user("x")], "response_format": "json"}, "response_format"),
    ],
)
def test_malformed_requests(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        to_gemini(req)
    assert e.value.param == param
    assert e.value.message


def test_request_body_must_be_an_object() -> None:
    with pytest.raises(TranslationError):
        chat_to_gemini_request([], opts())  # type: ignore[arg-type]


# -- Gemini response -> OpenAI response ---------------------------------------------------


def test_text_response() -> None:
    resp = gemini_to_chat_response(load("generate_content_text.json")["response"], model="my-alias")
    ChatCompletion.model_validate(resp)
    assert resp["id"] == "chatcmpl-mAitaLmkHPPlz7IPvtfUqQ4"
    assert resp["model"] == "my-alias"
    assert resp["choices"][0]["message"]["content"].startswith("AI works by using algorithms")
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"]["prompt_tokens"] == 10 and resp["usage"]["completion_tokens"] == 25
    assert resp["usage"]["total_tokens"] == 35


def test_thinking_response_hides_thoughts_and_counts_them() -> None:
    resp = gemini_to_chat_response(
        load("generate_content_thinking_max_tokens.json")["response"], model="m"
    )
    ChatCompletion.model_validate(resp)
    choice = resp["choices"][0]
    assert choice["message"]["content"] == "We are looking"
    assert choice["finish_reason"] == "length"
    assert resp["usage"]["prompt_tokens"] == 29
    assert resp["usage"]["completion_tokens"] == 3 + 57
    assert resp["usage"]["completion_tokens_details"]["reasoning_tokens"] == 57
    assert resp["usage"]["total_tokens"] == 89  # == totalTokenCount


def test_candidate_without_content() -> None:
    resp = gemini_to_chat_response(
        load("generate_content_malformed_function_call.json")["response"], model="m"
    )
    ChatCompletion.model_validate(resp)
    assert resp["choices"][0]["message"]["content"] == ""
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"]["prompt_tokens"] == 61 and resp["usage"]["completion_tokens"] == 0


def test_function_call_response() -> None:
    recorded = load("generate_content_function_call.json")["response"]
    resp = gemini_to_chat_response(recorded, model="m")
    ChatCompletion.model_validate(resp)
    choice = resp["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "call_0" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Washington D.C."}
    sig = recorded["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert call["extra_content"] == {"google": {"thought_signature": sig}}
    assert resp["usage"]["completion_tokens"] == 17 + 56


def test_several_candidates_get_distinct_ids() -> None:
    call = {"functionCall": {"name": "f", "args": {}}}
    resp = gemini_to_chat_response(
        {
            "candidates": [
                {"content": {"parts": [call], "role": "model"}, "finishReason": "STOP", "index": 0},
                {
                    "content": {"parts": [{"text": "no"}, call], "role": "model"},
                    "finishReason": "STOP",
                    "index": 1,
                },
            ]
        },
        model="m",
    )
    ids = [c["message"]["tool_calls"][0]["id"] for c in resp["choices"]]
    assert ids == ["call_0", "call_1"]
    assert resp["choices"][1]["message"]["content"] == "no"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(reason: str | None, expected: str) -> None:
    cand: JSON = {"content": {"parts": [{"text": "x"}], "role": "model"}, "index": 0}
    if reason:
        cand["finishReason"] = reason
    resp = gemini_to_chat_response({"candidates": [cand]}, model="m")
    assert resp["choices"][0]["finish_reason"] == expected


def test_blocked_prompt() -> None:
    resp = gemini_to_chat_response(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}},
        model="m",
    )
    ChatCompletion.model_validate(resp)
    assert resp["choices"][0]["finish_reason"] == "content_filter"
    assert resp["usage"]["prompt_tokens"] == 8


def test_usage_from_gemini() -> None:
    assert usage_from_gemini(None) is None
    assert usage_from_gemini({}) == Usage()
    u = usage_from_gemini(
        {
            "promptTokenCount": 900,
            "cachedContentTokenCount": 512,
            "candidatesTokenCount": 200,
            "thoughtsTokenCount": 150,
            "toolUsePromptTokenCount": 40,
            "totalTokenCount": 1290,
        }
    )
    assert u == Usage(
        prompt_tokens=940, completion_tokens=350, cached_tokens=512, reasoning_tokens=150
    )
    assert u is not None and u.total_tokens == 1290


def test_logprobs_response() -> None:
    cand: JSON = {
        "content": {"parts": [{"text": "Hi!"}], "role": "model"},
        "finishReason": "STOP",
        "logprobsResult": {
            "topCandidates": [
                {
                    "candidates": [
                        {"token": "Hi", "logProbability": -0.1},
                        {"token": "Hello", "logProbability": -2.4},
                    ]
                },
                {"candidates": [{"token": "!", "logProbability": -0.01}]},
            ],
            "chosenCandidates": [
                {"token": "Hi", "logProbability": -0.1},
                {"token": "!", "logProbability": -0.01},
            ],
        },
    }
    resp = gemini_to_chat_response({"candidates": [cand]}, model="m")
    ChatCompletion.model_validate(resp)
    content = resp["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == ["Hi", "!"]
    assert content[0]["top_logprobs"][1] == {
        "token": "Hello",
        "logprob": -2.4,
        "bytes": list(b"Hello"),
    }
    back = chat_to_gemini_response(resp)["candidates"][0]["logprobsResult"]
    assert back["chosenCandidates"] == cand["logprobsResult"]["chosenCandidates"]


def test_response_must_be_an_object() -> None:
    with pytest.raises(TranslationError):
        gemini_to_chat_response("oops", model="m")  # type: ignore[arg-type]
    with pytest.raises(TranslationError):
        gemini_to_chat_response({"candidates": "oops"}, model="m")


# -- Gemini stream -> OpenAI chunks -------------------------------------------------------


def run_stream(events: list[JSON], model: str = "m") -> tuple[GeminiToChatStream, list[JSON]]:
    s = GeminiToChatStream(model=model)
    chunks = [c for ev in events for c in s.feed(ev)]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    return s, chunks


def test_text_stream() -> None:
    s, chunks = run_stream(load("stream_text_thinking.json")["events"])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == (
        "As of July 2026, the current stable Long-Term Support (LTS) version of Node.js is "
        '**v24.18.0**, while the latest "Current" feature release is **v26.5.0**.'
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert {c["id"] for c in chunks} == {"chatcmpl-uCdRasy1POqHz7IPsuT-kAs"}
    assert s.usage == Usage(prompt_tokens=131, completion_tokens=61 + 591, reasoning_tokens=591)
    final = s.final_usage_chunk()
    ChatCompletionChunk.model_validate(final)
    assert final["choices"] == [] and final["usage"]["total_tokens"] == 783


def test_raw_sse_capture_framing() -> None:
    raw: str = load("stream_thought_then_max_tokens_raw.json")["raw"]
    assert raw.endswith("\r\n\r\n") and "[DONE]" not in raw
    events = [json.loads(block.removeprefix("data: ")) for block in raw.split("\r\n\r\n") if block]
    s, chunks = run_stream(events)
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["We", None]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert s.usage.reasoning_tokens == 59 and s.usage.completion_tokens == 59


def test_function_call_stream() -> None:
    s, chunks = run_stream(load("stream_function_call.json")["events"])
    calls = [c for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert len(calls) == 1
    delta = calls[0]["choices"][0]["delta"]
    assert delta["role"] == "assistant"  # the thought chunk produced nothing
    (tc,) = delta["tool_calls"]
    assert tc["index"] == 0 and tc["id"] == "call_0" and tc["type"] == "function"
    assert tc["function"] == {"name": "get_weather", "arguments": '{"city":"Washington D.C."}'}
    assert tc["extra_content"]["google"]["thought_signature"].startswith("CiQB")
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert s.usage.completion_tokens == 17 + 56


def test_gemini3_parallel_calls_stream() -> None:
    s, chunks = run_stream(load("stream_gemini3_parallel_calls.json")["events"])
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [(tc["index"], tc["id"]) for tc in calls] == [(0, "call_463646"), (1, "call_463649")]
    assert "extra_content" in calls[0] and "extra_content" not in calls[1]
    # finishReason arrives on a later chunk without calls: still tool_calls.
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert s.usage == Usage(prompt_tokens=38, completion_tokens=32)


def test_stream_usage_ignores_countless_metadata() -> None:
    s = GeminiToChatStream(model="m")
    s.feed(
        {
            "candidates": [{"content": {"parts": [{"text": "a"}]}}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1},
        }
    )
    s.feed(
        {
            "candidates": [{"content": {"parts": [{"text": "b"}]}}],
            "usageMetadata": {"trafficType": "ON_DEMAND"},
        }
    )
    assert s.usage == Usage(prompt_tokens=4, completion_tokens=1)


def test_stream_blocked_prompt_and_list_events() -> None:
    s, chunks = run_stream(
        [
            [  # type: ignore[list-item]  # a JSON array of events is accepted too
                {
                    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                    "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                }
            ]
        ]
    )
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert s.usage.prompt_tokens == 5


def test_stream_rejects_non_objects() -> None:
    with pytest.raises(TranslationError):
        GeminiToChatStream(model="m").feed("data")  # type: ignore[arg-type]


# -- Gemini client request -> OpenAI request ----------------------------------------------


def test_gemini_request_snake_case_and_multimodal() -> None:
    # The shape of Google's own curl examples: snake_case field names.
    req = {
        "system_instruction": {"parts": [{"text": "You are a cat."}, {"text": " Meow."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What's in this image?"},
                    {"inline_data": {"mime_type": "image/jpeg", "data": "/9j/4AAQ"}},
                    {
                        "file_data": {
                            "mime_type": "image/png",
                            "file_uri": "https://example.com/a.png",
                        }
                    },
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                    {"inlineData": {"mimeType": "audio/mpeg", "data": "SUQz"}},
                    {
                        "inlineData": {
                            "mimeType": "text/plain",
                            "data": base64.b64encode(b"notes").decode(),
                        }
                    },
                ],
            },
        ],
        "generation_config": {"max_output_tokens": 100, "temperature": 0.3, "top_k": 40},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    out = gemini_to_chat_request(req, model="models/gemini-2.5-flash", stream=False)
    assert out == {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are a cat. Meow."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {
                        "type": "file",
                        "file": {
                            "filename": "document.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                        },
                    },
                    {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
                    {"type": "text", "text": "notes"},
                ],
            },
        ],
        "max_completion_tokens": 100,
        "temperature": 0.3,
    }


def test_gemini_request_function_calling_round() -> None:
    req = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris and Tokyo?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "thinking...", "thought": True},
                    {"text": "Checking."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2ln",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}},
                ],
            },
            {
                "role": "function",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"result": "21C"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 30}}},
                    {"text": "And tomorrow?"},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {
                                "city": {"type": "STRING", "nullable": True},
                                "days": {
                                    "type": "ARRAY",
                                    "items": {"type": "INTEGER"},
                                    "min_items": "1",
                                    "propertyOrdering": ["x"],
                                },
                            },
                            "required": ["city"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }
    out = gemini_to_chat_request(req, model="gemini-2.5-flash", stream=True)
    assert out["messages"] == [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "21C"},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":30}'},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": ["string", "null"]},
                        "days": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                    },
                    "required": ["city"],
                },
            },
        }
    ]
    assert out["tool_choice"] == "auto"
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_gemini_request_json_schema_tools_pass_through() -> None:
    schema = {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "additionalProperties": False,
    }
    out = gemini_to_chat_request(
        {
            "contents": [{"parts": [{"text": "x"}]}],  # role defaults to user
            "tools": [
                {
                    "functionDeclarations": [
                        {"name": "search", "parametersJsonSchema": schema},
                        {"name": "now"},
                    ]
                }
            ],
            "toolConfig": {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["search"]}
            },
        },
        model="gemini-2.5-flash",
        stream=False,
    )
    assert out["messages"] == [{"role": "user", "content": "x"}]
    assert out["tools"] == [
        {"type": "function", "function": {"name": "search", "parameters": schema}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "search"}}


@pytest.mark.parametrize(
    ("config", "choice", "names"),
    [
        ({"mode": "NONE"}, "none", ["a", "b", "c"]),
        ({"mode": "ANY"}, "required", ["a", "b", "c"]),
        ({"mode": "ANY", "allowedFunctionNames": ["a", "c"]}, "required", ["a", "c"]),
        ({"mode": "VALIDATED"}, "auto", ["a", "b", "c"]),
    ],
)
def test_gemini_tool_config(config: JSON, choice: str, names: list[str]) -> None:
    out = gemini_to_chat_request(
        {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": n} for n in ("a", "b", "c")]}],
            "toolConfig": {"functionCallingConfig": config},
        },
        model="m",
        stream=False,
    )
    assert out["tool_choice"] == choice
    assert [t["function"]["name"] for t in out["tools"]] == names
    assert out["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_gemini_generation_config() -> None:
    out = gemini_to_chat_request(
        {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {
                "topP": 0.5,
                "candidateCount": 2,
                "stopSequences": ["\n\n"],
                "seed": 3,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.2,
                "responseLogprobs": True,
                "logprobs": 2,
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}},
                "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
            },
        },
        model="m",
        stream=False,
    )
    assert out["top_p"] == 0.5 and out["n"] == 2 and out["stop"] == ["\n\n"] and out["seed"] == 3
    assert out["presence_penalty"] == 0.1 and out["frequency_penalty"] == 0.2
    assert out["logprobs"] is True and out["top_logprobs"] == 2
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {"type": "object", "properties": {"n": {"type": "number"}}},
        },
    }
    assert out["reasoning_effort"] == "medium"


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"thinkingBudget": 0}, "none"),
        ({"thinkingBudget": 512}, "low"),
        ({"thinkingBudget": 30000}, "high"),
        ({"thinkingBudget": -1}, None),
        ({"thinkingLevel": "LOW"}, "low"),
        ({"thinking_level": "high"}, "high"),
    ],
)
def test_gemini_thinking_to_effort(thinking: JSON, effort: str | None) -> None:
    out = gemini_to_chat_request(
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"thinkingConfig": thinking},
        },
        model="m",
        stream=False,
    )
    assert out.get("reasoning_effort") == effort


def test_gemini_json_object_mode() -> None:
    out = gemini_to_chat_request(
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"responseMimeType": "application/json"},
        },
        model="m",
        stream=False,
    )
    assert out["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({}, "contents"),
        ({"contents": []}, "contents"),
        ({"contents": [5]}, "contents[0]"),
        ({"contents": [{"role": "user"}]}, "contents[0].parts"),
        ({"contents": [{"role": "narrator", "parts": []}]}, "contents[0].role"),
        ({"contents": [{"role": "user", "parts": [7]}]}, "contents[0].parts[0]"),
        (
            {"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]},
            "contents[0].parts[0]",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[0]",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {}}]}]},
            "contents[0].parts[0].functionCall",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
                ]
            },
            "contents[0].parts[0].functionResponse",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AA"}}],
                    }
                ]
            },
            "contents[0].parts[0].inlineData",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"inlineData": "AA"}]}]},
            "contents[0].parts[0].inlineData",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "fileData": {
                                    "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                                    "mimeType": "image/png",
                                }
                            }
                        ],
                    }
                ]
            },
            "contents[0].parts[0].fileData",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "gs://b/o.png"}}]}]},
            "contents[0].parts[0].fileData",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]},
            "tools[0].googleSearch",
        ),
        ({"contents": [{"parts": [{"text": "x"}]}], "tools": "x"}, "tools"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/1"},
            "cachedContent",
        ),
        ({"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": 5}, "systemInstruction"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": []}, "generationConfig"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}},
            "generationConfig.temperature",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseModalities": ["IMAGE"]},
            },
            "generationConfig.responseModalities",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseMimeType": "text/x.enum"},
            },
            "generationConfig.responseMimeType",
        ),
    ],
)
def test_gemini_malformed_requests(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        gemini_to_chat_request(req, model="m", stream=False)
    assert e.value.param == param


# -- OpenAI response -> Gemini response ---------------------------------------------------


def test_openai_text_response_to_gemini() -> None:
    out = chat_to_gemini_response(load("openai_chat_completion_text.json")["response"])
    gtypes.GenerateContentResponse.model_validate(out)
    assert out == {
        "candidates": [
            {
                "content": {
                    "parts": [{"text": "Hello! How can I assist you today?"}],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 19,
            "candidatesTokenCount": 10,
            "totalTokenCount": 29,
        },
        "modelVersion": "gpt-4o-mini-2024-07-18",
        "responseId": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    }


def test_openai_tool_calls_response_to_gemini() -> None:
    out = chat_to_gemini_response(load("openai_chat_completion_tool_calls.json")["response"])
    parsed = gtypes.GenerateContentResponse.model_validate(out)
    assert [(c.name, c.args) for c in parsed.function_calls or []] == [
        ("get_current_weather", {"location": "Boston, MA"}),
        ("get_current_weather", {"location": "Paris, France", "unit": "celsius"}),
    ]
    assert out["candidates"][0]["finishReason"] == "STOP"
    assert out["usageMetadata"] == {
        "promptTokenCount": 1082,
        "candidatesTokenCount": 25,
        "totalTokenCount": 1299,
        "cachedContentTokenCount": 1024,
        "thoughtsTokenCount": 192,
    }
    # And back: the usage survives both conversions.
    assert usage_from_gemini(out["usageMetadata"]) == Usage(1082, 217, 1024, 0, 192)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "STOP"),
        ("length", "MAX_TOKENS"),
        ("tool_calls", "STOP"),
        ("content_filter", "SAFETY"),
    ],
)
def test_openai_finish_reasons_to_gemini(reason: str, expected: str) -> None:
    out = chat_to_gemini_response(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": reason,
                    "message": {"role": "assistant", "content": "x"},
                }
            ]
        }
    )
    assert out["candidates"][0]["finishReason"] == expected


def test_openai_response_edge_cases() -> None:
    out = chat_to_gemini_response(
        {
            "id": "x",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "refusal": "I can't help with that.",
                    },
                },
                {
                    "index": 1,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    },
                },
            ],
        }
    )
    assert out["candidates"][0]["content"]["parts"] == [{"text": "I can't help with that."}]
    assert out["candidates"][1]["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"_raw_arguments": "{oops"}}}
    ]
    with pytest.raises(TranslationError):
        chat_to_gemini_response({"object": "chat.completion"})


# -- OpenAI stream -> Gemini stream -------------------------------------------------------


def gemini_stream(chunks: list[JSON], finish: bool = True) -> list[JSON]:
    s = ChatToGeminiStream(model="gpt-4.1-mini")
    out = [o for c in chunks for o in s.feed(c)]
    if finish:
        out += s.finish()
    for o in out:
        gtypes.GenerateContentResponse.model_validate(o)
    return out


def test_openai_text_stream_to_gemini() -> None:
    out = gemini_stream(load("openai_chunks_text.json")["chunks"])
    assert (
        "".join(
            p.get("text", "")
            for o in out
            for c in o.get("candidates", [])
            for p in c["content"]["parts"]
        )
        == "Hello! How are you?"
    )
    last = out[-1]
    # Like Gemini: the final object carries both finishReason and usageMetadata.
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"] == {
        "promptTokenCount": 13,
        "candidatesTokenCount": 5,
        "totalTokenCount": 18,
    }
    assert all(o["responseId"] == "chatcmpl-BqGfzo6sCRthRtNhwsYgvdLLmHCqx" for o in out)
    assert all("finishReason" not in c for o in out[:-1] for c in o["candidates"])


def test_openai_tool_call_stream_to_gemini() -> None:
    chunks = load("openai_chunks_tool_call.json")["chunks"]
    s = ChatToGeminiStream(model="gpt-4.1-mini")
    assert [o for c in chunks[:-1] for o in s.feed(c)] == []  # arguments are buffered
    (final,) = s.feed(chunks[-1])
    assert s.finish() == []
    parsed = gtypes.GenerateContentResponse.model_validate(final)
    assert [(c.name, c.args) for c in parsed.function_calls or []] == [
        ("get_weather", {"location": "Paris, France"}),
        ("get_weather", {"location": "Tokyo"}),
    ]
    assert final["candidates"][0]["finishReason"] == "STOP"
    assert final["usageMetadata"]["promptTokenCount"] == 81


def test_stream_without_usage_is_flushed_by_finish() -> None:
    chunks = [c for c in load("openai_chunks_tool_call.json")["chunks"] if c["choices"]]
    s = ChatToGeminiStream(model="m")
    assert [o for c in chunks for o in s.feed(c)] == []
    (final,) = s.finish()
    assert len(final["candidates"][0]["content"]["parts"]) == 2
    assert "usageMetadata" not in final


def test_truncated_stream_still_flushes_calls() -> None:
    chunks = load("openai_chunks_tool_call.json")["chunks"][:6]  # first call only, no finish
    out = gemini_stream(chunks)
    assert out[-1]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == {
        "location": "Paris, France"
    }
    assert "finishReason" not in out[-1]["candidates"][0]


def test_signature_survives_openai_stream() -> None:
    s = ChatToGeminiStream(model="m")
    s.feed(
        {
            "id": "x",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c",
                                "type": "function",
                                "extra_content": {"google": {"thought_signature": "c2ln"}},
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ]
                    },
                }
            ],
        }
    )
    s.feed({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    (final,) = s.finish()
    assert final["candidates"][0]["content"]["parts"][0]["thoughtSignature"] == "c2ln"


def test_sse_event_framing_matches_google() -> None:
    assert sse_event({"a": 1}) == b'data: {"a":1}\r\n\r\n'


# -- embeddings ------------------------------------------------------------------------


def test_embeddings_request() -> None:
    t = embeddings_to_gemini_request(
        {
            "model": "text-embedding-3-small",
            "input": ["a", "b"],
            "dimensions": 8,
            "encoding_format": "base64",
            "user": "u",
        },
        upstream_model="gemini-embedding-001",
    )
    assert t.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 8,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 8,
            },
        ]
    }
    assert t.warnings == ["'user' was dropped: Gemini has no equivalent."]
    single = embeddings_to_gemini_request(
        {"input": "hi"}, upstream_model="models/text-embedding-004"
    )
    assert single.body == {
        "requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "hi"}]}}]
    }


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({"input": [1, 2, 3]}, "input[0]"),
        ({"input": [[1, 2]]}, "input[0]"),
        ({"input": []}, "input"),
        ({}, "input"),
        ({"input": ["x"] * 101}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_embeddings_request_errors(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        embeddings_to_gemini_request(req, upstream_model="gemini-embedding-001")
    assert e.value.param == param


def test_embeddings_response_float_and_base64() -> None:
    recorded = load("batch_embed_contents.json")["response"]
    out = gemini_to_embeddings_response(
        recorded, model="text-embedding-3-small", encoding_format=None, prompt_tokens=12
    )
    CreateEmbeddingResponse.model_validate(out)
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][0]["embedding"] == recorded["embeddings"][0]["values"]
    assert out["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    assert out["model"] == "text-embedding-3-small"

    b64 = gemini_to_embeddings_response(
        recorded, model="m", encoding_format="base64", prompt_tokens=12
    )
    for item, emb in zip(b64["data"], recorded["embeddings"], strict=True):
        raw = base64.b64decode(item["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)  # what the openai SDK does
        assert decoded == pytest.approx(emb["values"], rel=1e-6)


def test_embeddings_response_variants() -> None:
    one = gemini_to_embeddings_response(
        {"embedding": {"values": [1, 0.5]}, "usageMetadata": {"promptTokenCount": 3}},
        model="m",
        encoding_format="float",
        prompt_tokens=99,
    )
    assert one["data"][0]["embedding"] == [1.0, 0.5] and one["usage"]["prompt_tokens"] == 3
    for bad in ({}, {"embeddings": [{"values": ["x"]}]}, {"embeddings": [5]}):
        with pytest.raises(TranslationError):
            gemini_to_embeddings_response(bad, model="m", encoding_format=None, prompt_tokens=0)


# -- errors ----------------------------------------------------------------------------


def test_parse_gemini_error() -> None:
    rec = load("error_429_resource_exhausted.json")
    message, status = parse_gemini_error(json.dumps(rec["body"]).encode())
    assert status == "RESOURCE_EXHAUSTED" and message.startswith("You exceeded your current quota")
    key = load("error_400_api_key_invalid.json")["body"]
    assert parse_gemini_error(json.dumps(key).encode()) == (
        "API key not valid. Please pass a valid API key.",
        "INVALID_ARGUMENT",
    )
    # streamGenerateContent without alt=sse wraps the error in a JSON array.
    assert parse_gemini_error(json.dumps([rec["body"]]).encode())[1] == "RESOURCE_EXHAUSTED"
    assert parse_gemini_error(b"<html><body>Bad Gateway</body></html>") == (
        "<html><body>Bad Gateway</body></html>",
        None,
    )
    assert parse_gemini_error(b"") == ("empty error body from Gemini", None)
    assert parse_gemini_error(b"[]") == ("[]", None)
    assert parse_gemini_error(b'{"error": "quota"}') == ("quota", None)
    assert parse_gemini_error(b'{"error": {"code": 500}}') == ('{"error": {"code": 500}}', None)
    assert parse_gemini_error("ünïcode \xff".encode("latin-1"))[1] is None


# -- robustness --------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None,
    0,
    1.5,
    True,
    "",
    "x",
    [],
    [None],
    {},
    {"x": None},
    [{}],
    {"type": None},
]


@pytest.mark.parametrize("value", ODD_VALUES)
def test_odd_shapes_only_raise_translation_errors(value: Any) -> None:
    """No KeyError/TypeError/AttributeError escapes, whatever the shape."""
    requests: list[JSON] = [
        {"messages": value},
        {"messages": [value]},
        {"messages": [{"role": "user", "content": value}]},
        {"messages": [{"role": "user", "content": [value]}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": value}]}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "input_audio", "input_audio": value}]}
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "file", "file": value}]}]},
        {"messages": [{"role": "assistant", "content": value, "tool_calls": value}]},
        {"messages": [{"role": "assistant", "tool_calls": [value]}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"function": value}]}]},
        {"messages": [{"role": "tool", "tool_call_id": value, "content": value}]},
        {"messages": [user("x")], "tools": value},
        {"messages": [user("x")], "tools": [value]},
        {"messages": [user("x")], "tools": [{"type": "function", "function": value}]},
        {"messages": [user("x")], "tool_choice": value},
        {"messages": [user("x")], "response_format": value},
        {"messages": [user("x")], "stop": value},
    ]
    for req in requests:
        with contextlib.suppress(TranslationError):
            chat_to_gemini_request(req, opts(strict=False))
    gemini_requests: list[JSON] = [
        {"contents": value},
        {"contents": [value]},
        {"contents": [{"role": "user", "parts": value}]},
        {"contents": [{"role": "user", "parts": [value]}]},
        {"contents": [{"role": "model", "parts": [{"functionCall": value}]}]},
        {"contents": [{"role": "user", "parts": [{"functionResponse": value}]}]},
        {"contents": [{"role": "user", "parts": [{"inlineData": value}]}]},
        {"contents": [{"role": "user", "parts": [{"fileData": value}]}]},
        {"contents": [{"parts": [{"text": "x"}]}], "tools": [value]},
        {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": value}]},
        {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [value]}]},
        {"contents": [{"parts": [{"text": "x"}]}], "toolConfig": value},
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": value},
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": value}},
    ]
    for req in gemini_requests:
        with contextlib.suppress(TranslationError):
            gemini_to_chat_request(req, model="m", stream=False)
    responses: list[Any] = [
        {"candidates": value},
        {"candidates": [value]},
        {"candidates": [{"content": value}]},
        {"candidates": [{"content": {"parts": value}}]},
        {"candidates": [{"content": {"parts": [value]}}], "usageMetadata": value},
    ]
    for resp in responses:
        with contextlib.suppress(TranslationError):
            gemini_to_chat_response(resp, model="m")
        with contextlib.suppress(TranslationError):
            GeminiToChatStream(model="m").feed(resp)
    for chunk in (
        {"choices": value},
        {"choices": [value]},
        {"choices": [{"delta": value}]},
        {"choices": [{"delta": {"tool_calls": value}}]},
        {"choices": [{"delta": {"tool_calls": [value]}, "finish_reason": "stop"}]},
    ):
        s = ChatToGeminiStream(model="m")
        s.feed(chunk)
        s.finish()
    for resp in (
        {"choices": [value]},
        {"choices": [{"message": value}]},
        {"choices": [{"message": {"tool_calls": value}}]},
    ):
        with contextlib.suppress(TranslationError):
            chat_to_gemini_response(resp)
