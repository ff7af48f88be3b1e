"""Payloads and helpers shared by the Gemini translator tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aigw.translate.common import TranslateOptions
from aigw.translate.gemini import chat_to_gemini_request

PAYLOADS = Path(__file__).parent.parent / "payloads" / "gemini"
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
