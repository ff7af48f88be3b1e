"""OpenAI chat completion and chunks -> Gemini answer and stream."""

from __future__ import annotations

import pytest
from google.genai import types as gtypes

from aigw.translate.common import TranslationError
from aigw.translate.gemini import (
    ChatToGeminiStream,
    chat_to_gemini_response,
    sse_event,
    usage_from_gemini,
)
from aigw.usage import Usage
from tests.translate.gemini.helpers import JSON, load


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
