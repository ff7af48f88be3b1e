"""Token estimates for when no tokenizer answer is available.

Used where a number is needed before the provider has counted (admission, budget
reservation, count_tokens for non-Anthropic targets) and where a provider did not
report usage. About four characters per token for text; an inline image or file
(a long string without spaces: base64 or a data URL) counts as a flat 1,000 tokens.
Estimates are flagged wherever they reach the ledger.
"""

from __future__ import annotations

from typing import Any

IMAGE_TOKENS = 1000
PER_MESSAGE = 4
_BLOB = 2000  # a string this long without a space is binary data, not text


def chars_to_tokens(chars: int) -> int:
    return (chars + 3) // 4


def text_tokens(text: str) -> int:
    return chars_to_tokens(len(text))


def estimate(value: Any) -> int:
    """Tokens of every string inside ``value`` (a JSON-like tree); keys are not counted."""
    if isinstance(value, str):
        if len(value) > _BLOB and " " not in value[:_BLOB]:
            return IMAGE_TOKENS
        return text_tokens(value)
    if isinstance(value, dict):
        return sum(estimate(v) for v in value.values())
    if isinstance(value, list):
        return sum(estimate(v) + (PER_MESSAGE if isinstance(v, dict) else 0) for v in value)
    return 0


def chat_prompt_tokens(body: dict[str, Any]) -> int:
    """Estimate the prompt tokens of an OpenAI chat request."""
    return 3 + estimate(body.get("messages")) + estimate(body.get("tools"))
