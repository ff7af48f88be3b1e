"""OpenAI chat completions as clients speak it: validation and stream encoding."""

from __future__ import annotations

from typing import Any

from aigw.errors import GatewayError, Wire, bad_request, error_payload
from aigw.formats import JSON, Call
from aigw.formats.validate import check, describe, required_model, shown
from aigw.sse import DONE, encode
from aigw.tokens import prompt
from aigw.translate.common import Translated, TranslateOptions

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse(body: Any) -> Call:
    """Validate the fields the gateway relies on; unknown fields pass through."""
    if not isinstance(body, dict):
        raise bad_request(
            f"The request body must be a JSON object, got {describe(body)}.", code="invalid_body"
        )
    model = required_model(body)
    messages = body.get("messages")
    if messages is None:
        raise bad_request(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise bad_request(
            f"Invalid type for 'messages': expected an array, got {describe(messages)}.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise bad_request(
            "'messages' must contain at least one message.", param="messages", code="empty_array"
        )
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(
                f"Invalid type for '{where}': expected an object, got {describe(m)}.",
                param=where,
                code="invalid_type",
            )
        role = m.get("role")
        # The type check comes first: a dict or list cannot be looked up in a set.
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(
                f"Invalid value for '{where}.role': {shown(role)}; expected one of "
                f"{', '.join(sorted(ROLES))}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise bad_request(
                f"Invalid type for '{where}.content': expected a string or an "
                f"array of content parts, got {describe(content)}.",
                param=f"{where}.content",
                code="invalid_type",
            )
    stream = bool(check(body, "stream", bool))
    options = check(body, "stream_options", dict)
    max_tokens = check(body, "max_tokens", int, minimum=1)
    max_completion = check(body, "max_completion_tokens", int, minimum=1)
    check(body, "temperature", float, minimum=0, maximum=2)
    check(body, "top_p", float, minimum=0, maximum=1)
    check(body, "n", int, minimum=1, maximum=128)
    check(body, "tools", list)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise bad_request(
            f"Invalid type for 'stop': expected a string or an array of strings, "
            f"got {describe(stop)}.",
            param="stop",
            code="invalid_type",
        )
    tool_choice = body.get("tool_choice")
    if tool_choice is not None and not isinstance(tool_choice, (str, dict)):
        raise bad_request(
            f"Invalid type for 'tool_choice': expected a string or an object, "
            f"got {describe(tool_choice)}.",
            param="tool_choice",
            code="invalid_type",
        )
    wants_usage = bool(options and options.get("include_usage") is True)
    est = prompt(body, "chat")
    return Call(
        model,
        stream,
        body,
        wants_usage,
        est.tokens,
        max_completion or max_tokens,
        prompt_bound=est.bound,
    )


class OpenAIChatStream:
    """Hub chunks are OpenAI chunks: encode them; usage only if the client asked."""

    def __init__(self, wants_usage: bool) -> None:
        self.wants_usage = wants_usage

    def feed(self, chunk: JSON) -> bytes:
        return encode(chunk)

    def finish(self, usage_chunk: JSON) -> bytes:
        return (encode(usage_chunk) if self.wants_usage else b"") + DONE


class OpenAIChat:
    """POST /v1/chat/completions: the hub format itself."""

    wire = Wire.OPENAI

    def to_hub(self, call: Call, opts: TranslateOptions) -> Translated:
        return Translated(call.body)

    def from_hub(self, hub: JSON, model: str) -> JSON:
        return hub

    def stream(self, call: Call, model: str) -> OpenAIChatStream:
        return OpenAIChatStream(call.wants_usage)

    def stream_error(self, err: GatewayError) -> bytes:
        return encode(error_payload(err, Wire.OPENAI))


FORMAT = OpenAIChat()
