"""Anthropic Messages as clients speak it (``POST /v1/messages``)."""

from __future__ import annotations

from typing import Any

from aigw.errors import GatewayError, Wire, bad_request, error_payload
from aigw.formats import JSON, Call
from aigw.formats.validate import check, describe, required_model
from aigw.sse import encode
from aigw.tokens import prompt
from aigw.translate import anthropic as tr
from aigw.translate.common import Translated, TranslateOptions


def _object(body: Any) -> JSON:
    if not isinstance(body, dict):
        raise bad_request(f"The request body must be a JSON object, got {describe(body)}.")
    return body


def _messages(body: JSON) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            f"messages: expected a non-empty array of messages, got {describe(messages)}.",
            param="messages",
        )
    for i, m in enumerate(messages):
        # "system": a mid-conversation system entry (the mid-conversation-system beta).
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise bad_request(
                f"messages.{i}: expected an object with role 'user', 'assistant' or 'system'.",
                param=f"messages.{i}",
            )
        if not isinstance(m.get("content"), (str, list)):
            raise bad_request(
                f"messages.{i}.content: expected a string or an array of "
                f"content blocks, got {describe(m.get('content'))}.",
                param=f"messages.{i}.content",
            )


def parse(body: Any) -> Call:
    body = _object(body)
    model = required_model(body)
    _messages(body)
    max_tokens = check(body, "max_tokens", int, minimum=1)
    if max_tokens is None:
        raise bad_request("max_tokens: Field required.", param="max_tokens")
    stream = bool(check(body, "stream", bool))
    check(body, "temperature", float, minimum=0, maximum=1)
    check(body, "top_p", float, minimum=0, maximum=1)
    check(body, "tools", list)
    check(body, "stop_sequences", list)
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise bad_request(
            f"system: expected a string or an array of text blocks, got {describe(system)}.",
            param="system",
        )
    est = prompt(body, "messages")
    return Call(model, stream, body, False, est.tokens, max_tokens, prompt_bound=est.bound)


def parse_count_tokens(body: Any) -> Call:
    body = _object(body)
    model = required_model(body)
    _messages(body)
    est = prompt(body, "messages")
    return Call(model, False, body, False, est.tokens, None, prompt_bound=est.bound)


class MessagesStream:
    def __init__(self, model: str, input_tokens: int) -> None:
        self._tr = tr.ChatToMessagesStream(model=model, input_tokens=input_tokens)

    def feed(self, chunk: JSON) -> bytes:
        return b"".join(encode(data, event) for event, data in self._tr.feed(chunk))

    def finish(self, usage_chunk: JSON) -> bytes:
        events = self._tr.feed(usage_chunk) + self._tr.finish()
        return b"".join(encode(data, event) for event, data in events)


class AnthropicMessages:
    wire = Wire.ANTHROPIC

    def to_hub(self, call: Call, opts: TranslateOptions) -> Translated:
        return tr.messages_to_chat_request(
            call.body, strict=opts.strict, refuse_unknown=opts.refuse_unknown
        )

    def from_hub(self, hub: JSON, model: str) -> JSON:
        return tr.chat_to_messages_response(hub, model=model)

    def stream(self, call: Call, model: str) -> MessagesStream:
        return MessagesStream(model, call.prompt_estimate)

    def stream_error(self, err: GatewayError) -> bytes:
        return encode(error_payload(err, Wire.ANTHROPIC), "error")


FORMAT = AnthropicMessages()
