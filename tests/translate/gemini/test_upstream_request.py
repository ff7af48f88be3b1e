"""OpenAI chat request (the hub) -> Gemini request, against recorded payloads."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aigw.translate.common import TranslationError
from aigw.translate.gemini import SKIP_SIGNATURE, chat_to_gemini_request, gemini_to_chat_response
from tests.translate.gemini.helpers import JSON, WEATHER_TOOL, load, opts, to_gemini, user


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
