"""OpenAI chat completion and chunks (the hub) -> Anthropic message and SSE events.

What an Anthropic-speaking client receives when another provider answered.

* **Thinking.** The hub's ``reasoning_content`` (Gemini thought summaries, reasoning
  of OpenAI-compatible servers) becomes a ``thinking`` block ahead of the text, as
  Anthropic orders them. It carries an empty ``signature``: no Anthropic key signed
  it, and a client sending it back reaches a non-Anthropic target, which drops it.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from aigw.translate.anthropic.shared import _fail, _strip_prefix
from aigw.translate.common import JSON, content_text, tool_call_slot
from aigw.usage import Usage, usage_from_openai

_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _anthropic_usage(u: Usage) -> JSON:
    return {
        "input_tokens": max(0, u.prompt_tokens - u.cached_tokens - u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    }


def _input_from_arguments(arguments: object) -> JSON:
    """Model-written arguments -> tool_use input; Anthropic needs an object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    # Keep malformed model output visible rather than silently losing it.
    return value if isinstance(value, dict) else {"arguments": arguments}


def chat_to_messages_response(resp: JSON, *, model: str) -> JSON:
    """OpenAI ``chat.completion`` -> Anthropic message."""
    if not isinstance(resp, dict):
        raise _fail("chat completion must be a JSON object", "body")
    choices = resp.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        raise _fail("chat completion has no choices", "choices")
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    blocks: list[JSON] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = content_text(message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        text = text or refusal
    if text:
        blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_aigw_{k}",
                "name": fn.get("name") or "",
                "input": _input_from_arguments(fn.get("arguments")),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_aigw_legacy",
                "name": legacy.get("name") or "",
                "input": _input_from_arguments(legacy.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    stop_reason = _FINISH_TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if isinstance(refusal, str) and refusal:
        stop_reason = "refusal"
    usage = usage_from_openai(resp.get("usage")) or Usage()
    return {
        "id": "msg_" + _strip_prefix(resp.get("id"), "chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage),
    }


class ChatToMessagesStream:
    """OpenAI ``chat.completion.chunk`` dicts -> Anthropic SSE (event, data) pairs.

    ``input_tokens`` is the estimate announced in ``message_start``; the real counts go
    out in ``message_delta`` once the upstream usage chunk arrives (or at :meth:`finish`).
    """

    def __init__(self, *, model: str, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.usage: Usage | None = None
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: int | None = None  # index of the open content block
        self._open_text = False
        self._open_thinking = False
        self._tools: dict[int, int] = {}  # OpenAI tool_call index -> block index
        self._stop_reason: str | None = None

    def _message_start(self, chunk_id: object) -> tuple[str, JSON]:
        self._started = True
        message: JSON = {
            "id": "msg_" + _strip_prefix(chunk_id, "chatcmpl-"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        return ("message_start", {"type": "message_start", "message": message})

    def _close(self) -> list[tuple[str, JSON]]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        self._open_text = self._open_thinking = False
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(
        self, block: JSON, *, text: bool, thinking: bool = False
    ) -> list[tuple[str, JSON]]:
        out = self._close()
        index = self._next_index
        self._next_index += 1
        self._open, self._open_text, self._open_thinking = index, text, thinking
        event = {"type": "content_block_start", "index": index, "content_block": block}
        return [*out, ("content_block_start", event)]

    def _text(self, text: str) -> list[tuple[str, JSON]]:
        out = [] if self._open_text else self._open_block({"type": "text", "text": ""}, text=True)
        delta = {"type": "text_delta", "text": text}
        out.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": self._open, "delta": delta},
            )
        )
        return out

    def _thinking(self, text: str) -> list[tuple[str, JSON]]:
        out = []
        if not self._open_thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._open_block(block, text=False, thinking=True)
        delta = {"type": "thinking_delta", "thinking": text}
        event = {"type": "content_block_delta", "index": self._open, "delta": delta}
        return [*out, ("content_block_delta", event)]

    def _tool_calls(self, calls: Iterable[object]) -> list[tuple[str, JSON]]:
        out: list[tuple[str, JSON]] = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            key = tool_call_slot(call, len(self._tools))
            fn = call.get("function")
            fn = fn if isinstance(fn, dict) else {}
            if key not in self._tools:
                block: JSON = {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_aigw_{key}",
                    "name": fn.get("name") or "",
                    "input": {},
                }
                out += self._open_block(block, text=False)
                self._tools[key] = self._next_index - 1
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                delta = {"type": "input_json_delta", "partial_json": arguments}
                event = {"type": "content_block_delta", "index": self._tools[key], "delta": delta}
                out.append(("content_block_delta", event))
        return out

    def _end(self) -> list[tuple[str, JSON]]:
        self._ended = True
        usage: JSON = {"output_tokens": 0}
        if self.usage is not None:
            usage = _anthropic_usage(self.usage)
        delta = {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None}
        return [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def feed(self, chunk: JSON) -> list[tuple[str, JSON]]:
        """One OpenAI chunk -> Anthropic events. A usage chunk carries the final usage."""
        if self._ended or not isinstance(chunk, dict):
            return []
        out: list[tuple[str, JSON]] = []
        if not self._started:
            out.append(self._message_start(chunk.get("id")))
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic has one choice
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out += self._thinking(reasoning)
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out += self._text(text)
                    if key == "refusal":
                        self._stop_reason = "refusal"
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                out += self._tool_calls(calls)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                out += self._close()
                if self._stop_reason != "refusal":
                    self._stop_reason = _FINISH_TO_STOP.get(finish, "end_turn")
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        if self._stop_reason is not None and self.usage is not None:
            out += self._end()
        return out

    def finish(self) -> list[tuple[str, JSON]]:
        """Close the message after the upstream ``[DONE]`` (or a usage-less end)."""
        if self._ended:
            return []
        out: list[tuple[str, JSON]] = []
        if not self._started:
            out.append(self._message_start(None))
        out += self._close()
        return out + self._end()
