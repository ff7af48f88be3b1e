"""Anthropic message, stream and error body -> OpenAI chat completions (the hub).

The plain and the streamed translator share the finish-reason and usage mappings and
both unwrap the JSON-mode tool (:data:`JSON_TOOL_NAME`) into message content.

* **Thinking output** is not part of the OpenAI message; it is surfaced as
  ``reasoning_content`` (message field and stream delta) and counted in usage
  (``output_tokens_details.thinking_tokens`` -> ``reasoning_tokens``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aigw.translate.anthropic.shared import JSON_TOOL_NAME, _dumps, _fail, _strip_prefix
from aigw.translate.common import JSON, openai_usage, usage_chunk
from aigw.translate.tool_ids import from_anthropic
from aigw.usage import Usage

_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicStreamError(Exception):
    """An ``error`` event arrived in the middle of an Anthropic stream."""

    def __init__(self, message: str, error_type: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_anthropic(u: object) -> Usage | None:
    """Read an Anthropic ``usage`` object (message, message_start or message_delta)."""
    if not isinstance(u, dict):
        return None
    read = _int(u.get("cache_read_input_tokens"))
    write = _int(u.get("cache_creation_input_tokens"))
    # ``cache_creation`` splits the writes by TTL; 1-hour writes cost more (2x input
    # against 1.25x). The split cannot exceed the total the same object states.
    ttl = u.get("cache_creation")
    write_1h = (
        min(_int(ttl.get("ephemeral_1h_input_tokens")), write) if isinstance(ttl, dict) else 0
    )
    details = u.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=_int(u.get("input_tokens")) + read + write,
        completion_tokens=_int(u.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=thinking,
        cache_write_1h_tokens=write_1h,
    )


def _call_id(value: object) -> object:
    # An id aigw encoded for Anthropic (translate.tool_ids) goes back as the client's.
    return from_anthropic(value) if isinstance(value, str) else value


def _finish_reason(stop_reason: object, *, tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not tool_calls:
        return "stop"  # only the JSON-mode tool was called: the answer is content
    if isinstance(stop_reason, str):
        return _STOP_TO_FINISH.get(stop_reason, "stop")
    return "stop"


def messages_to_chat_response(resp: JSON, *, model: str) -> JSON:
    """Anthropic message -> OpenAI ``chat.completion``."""
    if not isinstance(resp, dict):
        raise _fail("Anthropic response must be a JSON object", "body")
    blocks = resp.get("content")
    if not isinstance(blocks, list):
        raise _fail("Anthropic response has no content list", "content")
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[JSON] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            reasoning.append(block["thinking"])
        elif kind == "tool_use":
            input_ = block.get("input")
            arguments = _dumps(input_ if isinstance(input_, dict) else {})
            if block.get("name") == JSON_TOOL_NAME:
                texts.append(arguments)
                continue
            tool_calls.append(
                {
                    "id": _call_id(block.get("id")),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        # Server tool blocks, redacted thinking and the like have no OpenAI form.
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = usage_from_anthropic(resp.get("usage")) or Usage()
    return {
        "id": "chatcmpl-" + _strip_prefix(resp.get("id"), "chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(
                    resp.get("stop_reason"), tool_calls=bool(tool_calls)
                ),
            }
        ],
        "usage": openai_usage(usage),
    }


class MessagesToChatStream:
    """Anthropic SSE events -> OpenAI ``chat.completion.chunk`` dicts.

    ``usage`` holds the exact usage seen so far (final once ``message_delta`` arrived).
    An ``error`` event raises :class:`AnthropicStreamError`.
    """

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.usage = Usage()
        self.finish_reason: str | None = None
        self._id = "chatcmpl-aigw"
        self._created = int(time.time())
        self._started = False
        self._raw_usage: JSON = {}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_call index
        self._json_blocks: set[int] = set()

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _update_usage(self, u: object) -> None:
        if not isinstance(u, dict):
            return
        # message_delta counts are cumulative: overwrite, keeping message_start's values
        # for the fields a delta omits.
        self._raw_usage.update({k: v for k, v in u.items() if v is not None})
        self.usage = usage_from_anthropic(self._raw_usage) or Usage()

    def _start(self) -> list[JSON]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _tool_head(self, index: int, block: JSON) -> list[JSON]:
        tc_index = len(self._tools)
        self._tools[index] = tc_index
        input_ = block.get("input")
        # Anthropic streams the input through deltas and starts with {}; a non-empty
        # start input (never seen for client tools) must not be lost.
        arguments = _dumps(input_) if isinstance(input_, dict) and input_ else ""
        call = {
            "index": tc_index,
            "id": _call_id(block.get("id")),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def feed(self, event: str, data: JSON) -> list[JSON]:
        """One Anthropic SSE event (its name and parsed data) -> zero or more chunks."""
        if not isinstance(data, dict):
            return []
        kind = event if event and event != "message" else str(data.get("type", ""))
        if kind == "error":
            err = data.get("error")
            err = err if isinstance(err, dict) else {}
            raise AnthropicStreamError(
                str(err.get("message") or "upstream stream error"),
                err.get("type") if isinstance(err.get("type"), str) else None,
            )
        if kind == "message_start":
            msg = data.get("message")
            if isinstance(msg, dict):
                if isinstance(msg.get("id"), str):
                    self._id = "chatcmpl-" + msg["id"]
                self._update_usage(msg.get("usage"))
            return self._start()
        out: list[JSON] = []
        if kind == "content_block_start":
            out += self._start()
            index, block = data.get("index"), data.get("content_block")
            if not isinstance(index, int) or not isinstance(block, dict):
                return out
            btype = block.get("type")
            if btype == "text" and block.get("text"):
                out.append(self._chunk({"content": block["text"]}))
            elif btype == "thinking" and block.get("thinking"):
                out.append(self._chunk({"reasoning_content": block["thinking"]}))
            elif btype == "tool_use":
                if block.get("name") == JSON_TOOL_NAME:
                    self._json_blocks.add(index)
                    input_ = block.get("input")
                    if isinstance(input_, dict) and input_:
                        out.append(self._chunk({"content": _dumps(input_)}))
                else:
                    out += self._tool_head(index, block)
        elif kind == "content_block_delta":
            out += self._start()
            index, delta = data.get("index"), data.get("delta")
            if not isinstance(delta, dict):
                return out
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                out.append(self._chunk({"content": delta["text"]}))
            elif dtype == "thinking_delta" and delta.get("thinking"):
                out.append(self._chunk({"reasoning_content": delta["thinking"]}))
            # The index is checked before the set lookups: a malformed one may be unhashable.
            elif (
                dtype == "input_json_delta" and delta.get("partial_json") and isinstance(index, int)
            ):
                partial = delta["partial_json"]
                if index in self._json_blocks:
                    out.append(self._chunk({"content": partial}))
                elif index in self._tools:
                    call = {"index": self._tools[index], "function": {"arguments": partial}}
                    out.append(self._chunk({"tool_calls": [call]}))
        elif kind == "message_delta":
            out += self._start()
            self._update_usage(data.get("usage"))
            delta = data.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop is not None:
                self.finish_reason = _finish_reason(stop, tool_calls=bool(self._tools))
                out.append(self._chunk({}, self.finish_reason))
        return out

    def final_usage_chunk(self) -> JSON:
        """The trailing usage chunk of ``stream_options.include_usage``."""
        return usage_chunk(self._id, self._created, self.model, self.usage)


def parse_anthropic_error(body: bytes) -> tuple[str, str | None]:
    """(message, error type) from an Anthropic error body; never raises."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            etype = err.get("type")
            return (
                message if isinstance(message, str) and message else "unknown upstream error",
                etype if isinstance(etype, str) else None,
            )
        if isinstance(err, str) and err:
            return err, None
        if isinstance(data.get("message"), str):
            return data["message"], None
    text = body.decode("utf-8", "replace").strip() if body else ""
    return (text[:500] or "empty error body from upstream"), None
