"""Token estimates for when no tokenizer answer is available.

Used where a number is needed before the provider has counted (admission, budget
reservation, count_tokens for non-Anthropic targets) and where a provider did not
report usage. About four characters per token for English text; images count as a
flat 1,000 tokens. Estimates are flagged wherever they reach the ledger.
"""

from __future__ import annotations

from typing import Any

IMAGE_TOKENS = 1000
PER_MESSAGE = 4


def chars_to_tokens(chars: int) -> int:
    return (chars + 3) // 4


def text_tokens(text: str) -> int:
    return chars_to_tokens(len(text))


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                total += text_tokens(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("image_url", "image", "input_image") or "inlineData" in part:
                    total += IMAGE_TOKENS
                elif isinstance(part.get("text"), str):
                    total += text_tokens(part["text"])
                else:  # audio, files, tool results...: count their strings
                    total += _content_tokens([v for v in part.values() if isinstance(v, str)])
    return total


def chat_prompt_tokens(body: dict[str, Any]) -> int:
    """Estimate the prompt tokens of an OpenAI chat request."""
    total = 3
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                total += PER_MESSAGE + _content_tokens(m.get("content"))
                for call in m.get("tool_calls") or ():
                    if isinstance(call, dict):
                        fn = call.get("function") or {}
                        total += text_tokens(str(fn.get("arguments", ""))) + PER_MESSAGE
    tools = body.get("tools")
    if isinstance(tools, list):
        import orjson

        total += text_tokens(orjson.dumps(tools).decode())
    return total
