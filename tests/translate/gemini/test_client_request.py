"""Gemini client request -> OpenAI chat request (the hub)."""

from __future__ import annotations

import base64

import pytest

from aigw.translate.common import TranslationError
from aigw.translate.gemini import gemini_to_chat_request
from tests.translate.gemini.helpers import JSON


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
