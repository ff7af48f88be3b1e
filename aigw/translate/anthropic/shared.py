"""Constants and small helpers that more than one Anthropic translator uses."""

from __future__ import annotations

import orjson

from aigw.translate.common import TranslationError

DEFAULT_VERSION = "2023-06-01"
"""Value of the ``anthropic-version`` header."""


JSON_TOOL_NAME = "aigw_json_response"
"""The synthetic tool that carries an emulated ``response_format`` answer."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _fail(message: str, param: str) -> TranslationError:
    return TranslationError(message, param=param)


def _strip_prefix(value: object, prefix: str) -> str:
    text = value if isinstance(value, str) and value else "aigw"
    return text[len(prefix) :] if text.startswith(prefix) else text
