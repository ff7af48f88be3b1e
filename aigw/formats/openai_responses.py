"""OpenAI's Responses API as a client format, for targets that do not serve it.

A provider with the Responses API (openai) gets the body as it came; for any other
the request goes through the hub like a chat call. The answer echoes the request's
settings, so the format is bound to one call (:func:`bind`). What is dropped on the
way is warned about (``x-aigw-warning``) even under ``[translation] strict``: Codex
sends OpenAI-only tools on every call, and refusing them would make it unusable.
"""

from __future__ import annotations

from aigw.errors import GatewayError, Wire
from aigw.formats import JSON, Call
from aigw.sse import encode
from aigw.translate import responses as tr
from aigw.translate.common import Translated, TranslateOptions


def stream_error(err: GatewayError) -> bytes:
    """An ``error`` event as the Responses API streams it."""
    return encode(
        {"type": "error", "code": err.code, "message": err.message, "param": err.param}, "error"
    )


class ResponsesStream:
    def __init__(self, model: str, request: JSON) -> None:
        self._tr = tr.ChatToResponsesStream(model=model, request=request)

    def feed(self, chunk: JSON) -> bytes:
        return b"".join(encode(data, event) for event, data in self._tr.feed(chunk))

    def finish(self, usage_chunk: JSON) -> bytes:
        events = self._tr.feed(usage_chunk) + self._tr.finish()
        return b"".join(encode(data, event) for event, data in events)


class OpenAIResponses:
    """POST /v1/responses translated through the hub, for one call."""

    wire = Wire.OPENAI

    def __init__(self, call: Call) -> None:
        self.call = call

    def to_hub(self, call: Call, opts: TranslateOptions) -> Translated:
        hub, warnings = tr.responses_to_chat_request(call.body)
        return Translated(hub, warnings)

    def from_hub(self, hub: JSON, model: str) -> JSON:
        return tr.chat_to_response(hub, model=model, request=self.call.body)

    def stream(self, call: Call, model: str) -> ResponsesStream:
        return ResponsesStream(model, call.body)

    def stream_error(self, err: GatewayError) -> bytes:
        return stream_error(err)


def bind(call: Call) -> OpenAIResponses:
    return OpenAIResponses(call)
