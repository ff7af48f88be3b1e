"""Gemini answer, stream and error body -> OpenAI chat, against recorded payloads."""

from __future__ import annotations

import json
import re

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aigw.translate.common import TranslationError
from aigw.translate.gemini import (
    GeminiToChatStream,
    chat_to_gemini_response,
    gemini_to_chat_response,
    parse_gemini_error,
    usage_from_gemini,
)
from aigw.translate.tool_ids import mint
from aigw.usage import Usage
from tests.translate.gemini.helpers import JSON, load


def test_text_response() -> None:
    resp = gemini_to_chat_response(load("generate_content_text.json")["response"], model="my-alias")
    ChatCompletion.model_validate(resp)
    assert resp["id"] == "chatcmpl-mAitaLmkHPPlz7IPvtfUqQ4"
    assert resp["model"] == "my-alias"
    assert resp["choices"][0]["message"]["content"].startswith("AI works by using algorithms")
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"]["prompt_tokens"] == 10 and resp["usage"]["completion_tokens"] == 25
    assert resp["usage"]["total_tokens"] == 35


def test_thinking_response_carries_thoughts_apart_and_counts_them() -> None:
    resp = gemini_to_chat_response(
        load("generate_content_thinking_max_tokens.json")["response"], model="m"
    )
    ChatCompletion.model_validate(resp)
    choice = resp["choices"][0]
    assert choice["message"]["content"] == "We are looking"
    # The thought summary is not the answer: it rides as reasoning_content.
    assert choice["message"]["reasoning_content"].startswith("Okay, let me break this down.")
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
    # No functionCall.id in the recording: minted from the responseId without a seed.
    assert call["id"] == mint("response:" + recorded["responseId"], 0, "get_weather")
    assert call["type"] == "function"
    seeded = gemini_to_chat_response(recorded, model="m", seed="abc")
    assert seeded["choices"][0]["message"]["tool_calls"][0]["id"] == mint("abc", 0, "get_weather")
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
    assert len(set(ids)) == 2 and all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
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
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == [None, "We", None]
    assert chunks[0]["choices"][0]["delta"]["reasoning_content"].startswith(
        "**Initiating the Descent**"
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert s.usage.reasoning_tokens == 59 and s.usage.completion_tokens == 59


def test_function_call_stream() -> None:
    s, chunks = run_stream(load("stream_function_call.json")["events"])
    calls = [c for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert len(calls) == 1
    delta = calls[0]["choices"][0]["delta"]
    # The thought chunk came first, as reasoning_content.
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["reasoning_content"]
    (tc,) = delta["tool_calls"]
    assert tc["index"] == 0 and re.fullmatch(r"call_[0-9a-f]{24}", tc["id"])
    assert tc["type"] == "function"
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
