"""OpenAI chat completion and chunks (the hub) -> Gemini answer and SSE stream.

What a Gemini-speaking client receives when another provider answered.

* **Streams.** Gemini frames SSE as ``data: {json}\\r\\n\\r\\n`` with no terminator
  (:func:`sse_event`), sends each ``functionCall`` whole and puts ``usageMetadata`` on
  the chunk carrying ``finishReason``. :class:`ChatToGeminiStream` therefore buffers
  streamed tool arguments and holds the finishing candidate until the usage chunk (or
  :meth:`ChatToGeminiStream.finish`) so the last object has both.
* **Thoughts.** The hub's ``reasoning_content`` (Anthropic thinking, reasoning of
  OpenAI-compatible servers) becomes ``{"text": ..., "thought": true}`` parts ahead of
  the answer, as Gemini sends thought summaries with ``includeThoughts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from aigw.translate.common import JSON, TranslationError
from aigw.translate.gemini.shared import (
    _dumps,
    _is_int,
    _parse_args,
    _signature_of,
    _text_of,
)
from aigw.usage import Usage, usage_from_openai

_TO_GEMINI_FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def _usage_metadata(u: Usage) -> JSON:
    meta: JSON = {
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": max(u.completion_tokens - u.reasoning_tokens, 0),
        "totalTokenCount": u.total_tokens,
    }
    if u.cached_tokens:
        meta["cachedContentTokenCount"] = u.cached_tokens
    if u.reasoning_tokens:
        meta["thoughtsTokenCount"] = u.reasoning_tokens
    return meta


def _call_part(name: str, raw_args: Any, signature: str | None) -> JSON:
    try:
        args = _parse_args(raw_args, "arguments")
    except TranslationError:
        # The upstream model produced unparsable arguments; keep them visible, not lost.
        args = {"_raw_arguments": raw_args if isinstance(raw_args, str) else _dumps(raw_args)}
    part: JSON = {"functionCall": {"name": name, "args": args}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def _logprobs_to_gemini(lp: Any) -> JSON | None:
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return None
    entries = [e for e in content if isinstance(e, dict)]
    return {
        "topCandidates": [
            {
                "candidates": [
                    {"token": t.get("token"), "logProbability": t.get("logprob")}
                    for t in e.get("top_logprobs") or []
                    if isinstance(t, dict)
                ]
            }
            for e in entries
        ],
        "chosenCandidates": [
            {"token": e.get("token"), "logProbability": e.get("logprob")} for e in entries
        ],
        "logProbabilitySum": sum(e.get("logprob") or 0.0 for e in entries),
    }


def chat_to_gemini_response(resp: JSON) -> JSON:
    """OpenAI ``chat.completion`` -> Gemini ``GenerateContentResponse``."""
    if not isinstance(resp, dict):
        raise TranslationError("OpenAI response is not a JSON object")
    choices = resp.get("choices")
    if not isinstance(choices, list):
        raise TranslationError("OpenAI response has no choices list")
    candidates: list[JSON] = []
    for pos, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        msg: JSON = message if isinstance(message, dict) else {}
        parts: list[JSON] = []
        reasoning = msg.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            parts.append({"text": reasoning, "thought": True})
        text = msg.get("content")
        if isinstance(text, list):
            text = _text_of(text, f"choices[{pos}].message.content", ("text", "refusal"))
        if isinstance(text, str) and text:
            parts.append({"text": text})
        elif isinstance(msg.get("refusal"), str) and msg["refusal"]:
            parts.append({"text": msg["refusal"]})
        calls = msg.get("tool_calls")
        for tc in calls if isinstance(calls, list) else []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                parts.append(_call_part(fn["name"], fn.get("arguments"), _signature_of(tc)))
        cand: JSON = {
            "content": {"parts": parts or [{"text": ""}], "role": "model"},
            "finishReason": _TO_GEMINI_FINISH.get(str(choice.get("finish_reason")), "STOP"),
            "index": choice["index"] if _is_int(choice.get("index")) else pos,
        }
        logprobs = _logprobs_to_gemini(choice.get("logprobs"))
        if logprobs:
            cand["logprobsResult"] = logprobs
        candidates.append(cand)
    out: JSON = {"candidates": candidates}
    usage = usage_from_openai(resp.get("usage"))
    if usage is not None:
        out["usageMetadata"] = _usage_metadata(usage)
    if isinstance(resp.get("model"), str):
        out["modelVersion"] = resp["model"]
    if isinstance(resp.get("id"), str):
        out["responseId"] = resp["id"]
    return out


@dataclass(slots=True)
class _CallBuffer:
    name: str = ""
    arguments: str = ""
    signature: str | None = None


class ChatToGeminiStream:
    """OpenAI chunks -> Gemini stream objects (send each with :func:`sse_event`)."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self._response_id: str | None = None
        self._calls: dict[int, dict[int, _CallBuffer]] = {}  # choice -> tool index -> call
        self._pending: list[JSON] = []  # finished candidates held for the usage chunk

    def _obj(self, candidates: list[JSON], usage: JSON | None = None) -> JSON:
        obj: JSON = {}
        if candidates:
            obj["candidates"] = candidates
        if usage is not None:
            obj["usageMetadata"] = usage
        obj["modelVersion"] = self.model
        if self._response_id:
            obj["responseId"] = self._response_id
        return obj

    def _final(self, idx: int, reason: str | None) -> JSON:
        bufs = self._calls.pop(idx, {})
        parts = [
            _call_part(b.name, b.arguments, b.signature) for _, b in sorted(bufs.items()) if b.name
        ]
        cand: JSON = {"content": {"parts": parts or [{"text": ""}], "role": "model"}, "index": idx}
        if reason is not None:
            cand["finishReason"] = _TO_GEMINI_FINISH.get(reason, "STOP")
        return cand

    def feed(self, chunk: JSON) -> list[JSON]:
        if not isinstance(chunk, dict):
            raise TranslationError("OpenAI stream chunk is not a JSON object")
        if self._response_id is None and isinstance(chunk.get("id"), str):
            self._response_id = chunk["id"]
        out: list[JSON] = []
        choices = chunk.get("choices")
        for pos, choice in enumerate(choices if isinstance(choices, list) else []):
            if not isinstance(choice, dict):
                continue
            idx = choice["index"] if _is_int(choice.get("index")) else pos
            raw_delta = choice.get("delta")
            delta: JSON = raw_delta if isinstance(raw_delta, dict) else {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                content = {"parts": [{"text": reasoning, "thought": True}], "role": "model"}
                out.append(self._obj([{"content": content, "index": idx}]))
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str) and text:
                cand: JSON = {"content": {"parts": [{"text": text}], "role": "model"}, "index": idx}
                logprobs = _logprobs_to_gemini(choice.get("logprobs"))
                if logprobs:
                    cand["logprobsResult"] = logprobs
                out.append(self._obj([cand]))
            deltas = delta.get("tool_calls")
            for tc in deltas if isinstance(deltas, list) else []:
                if not isinstance(tc, dict):
                    continue
                ti = tc["index"] if _is_int(tc.get("index")) else 0
                buf = self._calls.setdefault(idx, {}).setdefault(ti, _CallBuffer())
                raw_fn = tc.get("function")
                fn: JSON = raw_fn if isinstance(raw_fn, dict) else {}
                if isinstance(fn.get("name"), str) and fn["name"] and not buf.name:
                    buf.name = fn["name"]
                if isinstance(fn.get("arguments"), str):
                    buf.arguments += fn["arguments"]
                buf.signature = buf.signature or _signature_of(tc)
            reason = choice.get("finish_reason")
            if reason:
                self._pending.append(self._final(idx, str(reason)))
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            out.append(self._obj(self._pending, _usage_metadata(usage)))
            self._pending = []
        return out

    def finish(self) -> list[JSON]:
        """Flush held candidates and tool calls of choices that never finished."""
        for idx in sorted(self._calls):
            self._pending.append(self._final(idx, None))
        if not self._pending:
            return []
        out = [self._obj(self._pending)]
        self._pending = []
        return out


def sse_event(obj: JSON) -> bytes:
    """One Gemini SSE event, framed the way Google frames it (CRLF, no ``[DONE]``)."""
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"
