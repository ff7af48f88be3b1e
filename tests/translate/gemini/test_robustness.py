"""Every Gemini translator raises only TranslationError, whatever the input's shape."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from aigw.translate.common import TranslationError
from aigw.translate.gemini import (
    ChatToGeminiStream,
    GeminiToChatStream,
    chat_to_gemini_request,
    chat_to_gemini_response,
    gemini_to_chat_request,
    gemini_to_chat_response,
)
from tests.translate.gemini.helpers import JSON, opts, user

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
