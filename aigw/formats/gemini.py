"""Gemini generateContent as clients speak it (``/v1beta/models/{model}:generateContent``)."""

from __future__ import annotations

from typing import Any

from aigw.errors import GatewayError, Wire, bad_request, error_payload
from aigw.formats import JSON, Call
from aigw.formats.validate import describe, model_name, shown
from aigw.tokens import prompt
from aigw.translate import gemini as tr
from aigw.translate.common import Translated, TranslateOptions


def parse(body: Any, *, model: str, stream: bool) -> Call:
    model = model_name(model)  # from the URL path, percent-decoded
    if not isinstance(body, dict):
        raise bad_request(f"Invalid JSON payload: expected an object, got {describe(body)}.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise bad_request(
            f"contents: expected a non-empty array of Content, got {describe(contents)}.",
            param="contents",
        )
    for i, c in enumerate(contents):
        if not isinstance(c, dict) or not isinstance(c.get("parts"), list):
            raise bad_request(
                f"contents[{i}]: expected an object with a 'parts' array.", param=f"contents[{i}]"
            )
    config = body.get("generationConfig", body.get("generation_config"))
    if config is not None and not isinstance(config, dict):
        raise bad_request(
            f"generationConfig: expected an object, got {describe(config)}.",
            param="generationConfig",
        )
    limit = (config or {}).get("maxOutputTokens", (config or {}).get("max_output_tokens"))
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise bad_request(
            f"generationConfig.maxOutputTokens: expected a positive integer, got {shown(limit)}.",
            param="generationConfig.maxOutputTokens",
        )
    est = prompt(body, "gemini")
    return Call(model, stream, body, False, est.tokens, limit, prompt_bound=est.bound)


class GeminiStream:
    def __init__(self, model: str) -> None:
        self._tr = tr.ChatToGeminiStream(model=model)

    def feed(self, chunk: JSON) -> bytes:
        return b"".join(tr.sse_event(obj) for obj in self._tr.feed(chunk))

    def finish(self, usage_chunk: JSON) -> bytes:
        objs = self._tr.feed(usage_chunk) + self._tr.finish()
        return b"".join(tr.sse_event(obj) for obj in objs)


class GeminiGenerate:
    wire = Wire.GOOGLE

    def to_hub(self, call: Call, opts: TranslateOptions) -> Translated:
        return Translated(
            tr.gemini_to_chat_request(call.body, model=call.model, stream=call.stream)
        )

    def from_hub(self, hub: JSON, model: str) -> JSON:
        return tr.chat_to_gemini_response(hub)

    def stream(self, call: Call, model: str) -> GeminiStream:
        return GeminiStream(model)

    def stream_error(self, err: GatewayError) -> bytes:
        return tr.sse_event(error_payload(err, Wire.GOOGLE))


FORMAT = GeminiGenerate()
