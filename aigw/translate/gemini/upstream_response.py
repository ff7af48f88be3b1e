"""Gemini ``generateContent`` answer, stream and error body -> OpenAI chat completions.

* **Usage.** ``prompt_tokens`` = promptTokenCount (+ toolUsePromptTokenCount, input the
  model read from tools, billed as input); ``completion_tokens`` = candidatesTokenCount +
  thoughtsTokenCount, so totals agree with ``totalTokenCount``.
* **Tool-call ids.** A ``functionCall.id`` is used when Gemini sends one; otherwise the
  id is minted from ``seed``, the digest of the conversation answered
  (:mod:`aigw.translate.tool_ids`), so ids never repeat across rounds. Without a seed
  the ``responseId`` (or a random value) stands in: unique, but not replay-stable.
* **Thoughts.** Thought summaries (parts with ``thought: true``, sent when the request
  has ``includeThoughts``) are not part of the answer: they become the hub's
  ``reasoning_content``, as Anthropic thinking does.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from aigw.translate.common import JSON, TranslationError, openai_usage, usage_chunk
from aigw.translate.gemini.shared import _dumps, _is_int
from aigw.translate.tool_ids import mint
from aigw.usage import Usage


def _int(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
}


def _finish_reason(reason: Any, has_calls: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if isinstance(reason, str) and reason in _FILTERED:
        return "content_filter"
    # STOP and the rest (OTHER, MALFORMED_FUNCTION_CALL, ...) end the turn normally.
    return "tool_calls" if has_calls else "stop"


def usage_from_gemini(u: object) -> Usage | None:
    """Read a Gemini ``usageMetadata`` object."""
    if not isinstance(u, dict):
        return None
    thoughts = _int(u.get("thoughtsTokenCount"))
    return Usage(
        prompt_tokens=_int(u.get("promptTokenCount")) + _int(u.get("toolUsePromptTokenCount")),
        completion_tokens=_int(u.get("candidatesTokenCount")) + thoughts,
        cached_tokens=_int(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _parts(candidate: JSON) -> list[JSON]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _visible_text(parts: list[JSON]) -> str:
    # Thought summaries (thought: true) are not part of the answer.
    return "".join(
        p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
    )


def _id_seed(seed: str, resp: JSON) -> str:
    if seed:
        return seed
    rid = resp.get("responseId")
    return f"response:{rid}" if isinstance(rid, str) and rid else uuid.uuid4().hex


def _thought_text(parts: list[JSON]) -> str:
    return "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and p.get("thought"))


def _tool_call(part: JSON, n: int, seed: str) -> JSON:
    fc = part["functionCall"]
    cid = fc.get("id")
    name = str(fc.get("name", ""))
    call: JSON = {
        "id": cid if isinstance(cid, str) and cid else mint(seed, n, name),
        "type": "function",
        "function": {"name": name, "arguments": _dumps(fc.get("args") or {})},
    }
    sig = part.get("thoughtSignature")
    if isinstance(sig, str) and sig:
        call["extra_content"] = {"google": {"thought_signature": sig}}
    return call


def _function_calls(parts: list[JSON]) -> list[JSON]:
    return [p for p in parts if isinstance(p.get("functionCall"), dict)]


def _bytes(token: str) -> list[int]:
    return list(token.encode())


def _logprobs_from_gemini(result: Any) -> JSON | None:
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates")
    if not isinstance(chosen, list):
        return None
    tops = result.get("topCandidates")
    top: list[Any] = tops if isinstance(tops, list) else []
    content: list[JSON] = []
    for i, c in enumerate(chosen):
        if not isinstance(c, dict):
            continue
        alts = top[i].get("candidates") if i < len(top) and isinstance(top[i], dict) else None
        token = str(c.get("token", ""))
        content.append(
            {
                "token": token,
                "logprob": c.get("logProbability", 0.0),
                "bytes": _bytes(token),
                "top_logprobs": [
                    {
                        "token": str(a.get("token", "")),
                        "logprob": a.get("logProbability", 0.0),
                        "bytes": _bytes(str(a.get("token", ""))),
                    }
                    for a in (alts if isinstance(alts, list) else [])
                    if isinstance(a, dict)
                ],
            }
        )
    return {"content": content, "refusal": None}


def _candidates(resp: JSON) -> list[JSON]:
    cands = resp.get("candidates")
    if cands is None:
        return []
    if not isinstance(cands, list):
        raise TranslationError("Gemini response 'candidates' is not a list")
    return [c for c in cands if isinstance(c, dict)]


def gemini_to_chat_response(resp: JSON, *, model: str, seed: str = "") -> JSON:
    """Gemini ``GenerateContentResponse`` -> OpenAI ``chat.completion``. ``seed``: the
    :func:`~aigw.translate.tool_ids.conversation_seed` of the request answered."""
    if not isinstance(resp, dict):
        raise TranslationError("Gemini response is not a JSON object")
    seed = _id_seed(seed, resp)
    choices: list[JSON] = []
    n = 0
    for pos, cand in enumerate(_candidates(resp)):
        parts = _parts(cand)
        calls = []
        for part in _function_calls(parts):
            calls.append(_tool_call(part, n, seed))
            n += 1
        text = _visible_text(parts)
        message: JSON = {
            "role": "assistant",
            "content": text or (None if calls else ""),
            "refusal": None,
        }
        thoughts = _thought_text(parts)
        if thoughts:
            message["reasoning_content"] = thoughts
        if calls:
            message["tool_calls"] = calls
        index = cand.get("index")
        choices.append(
            {
                "index": index if _is_int(index) else pos,
                "message": message,
                "logprobs": _logprobs_from_gemini(cand.get("logprobsResult")),
                "finish_reason": _finish_reason(cand.get("finishReason"), bool(calls)),
            }
        )
    if not choices:
        # No candidates: the prompt itself was blocked (promptFeedback.blockReason).
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        )
    rid = resp.get("responseId")
    return {
        "id": f"chatcmpl-{rid}" if isinstance(rid, str) and rid else _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": openai_usage(usage_from_gemini(resp.get("usageMetadata")) or Usage()),
    }


class GeminiToChatStream:
    """Gemini ``streamGenerateContent`` SSE data objects -> OpenAI chunks."""

    def __init__(self, *, model: str, seed: str = "") -> None:
        self.model = model
        self._seed = seed  # see gemini_to_chat_response
        self._meta: JSON | None = None  # the latest usageMetadata with counts
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> tool calls so far
        self._n = 0  # tool calls so far across choices, for minted ids

    @property
    def usage(self) -> Usage:
        """Exact usage so far. Google repeats the running totals on every chunk, so
        only the latest is kept and converted when asked for."""
        return (usage_from_gemini(self._meta) if self._meta is not None else None) or Usage()

    def _chunk(
        self, index: int, delta: JSON, finish: str | None = None, logprobs: JSON | None = None
    ) -> JSON:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ],
        }

    def feed(self, data: JSON) -> list[JSON]:
        """Translate one SSE ``data:`` object (a list of them is also accepted)."""
        if isinstance(data, list):
            return [c for item in data for c in self.feed(item)]
        if not isinstance(data, dict):
            raise TranslationError("Gemini stream event is not a JSON object")
        if self._id is None:
            rid = data.get("responseId")
            self._id = f"chatcmpl-{rid}" if isinstance(rid, str) and rid else _new_id("chatcmpl-")
            self._seed = _id_seed(self._seed, data)
        meta = data.get("usageMetadata")
        # Vertex sends count-less metadata ({"trafficType": ...}) before the last chunk.
        if isinstance(meta, dict) and ("promptTokenCount" in meta or "totalTokenCount" in meta):
            self._meta = meta
        out: list[JSON] = []
        cands = _candidates(data)
        feedback = data.get("promptFeedback")
        if (
            not cands
            and isinstance(feedback, dict)
            and feedback.get("blockReason")
            and 0 not in self._finished
        ):
            self._finished.add(0)
            if 0 not in self._started:
                out.append(self._chunk(0, {"content": ""}))
            out.append(self._chunk(0, {}, "content_filter"))
        for pos, cand in enumerate(cands):
            index = cand.get("index")
            idx = index if _is_int(index) else pos
            if idx in self._finished:
                continue
            parts = _parts(cand)
            thoughts = _thought_text(parts)
            if thoughts:
                out.append(self._chunk(idx, {"reasoning_content": thoughts}))
            text = _visible_text(parts)
            if text:
                out.append(
                    self._chunk(
                        idx,
                        {"content": text},
                        logprobs=_logprobs_from_gemini(cand.get("logprobsResult")),
                    )
                )
            for part in _function_calls(parts):
                k = self._calls.get(idx, 0)
                self._calls[idx] = k + 1
                call = _tool_call(part, self._n, self._seed)
                self._n += 1
                out.append(self._chunk(idx, {"tool_calls": [{"index": k, **call}]}))
            reason = cand.get("finishReason")
            if reason:
                self._finished.add(idx)
                if idx not in self._started:
                    out.append(self._chunk(idx, {"content": ""}))
                out.append(self._chunk(idx, {}, _finish_reason(reason, idx in self._calls)))
        return out

    def final_usage_chunk(self) -> JSON:
        """The ``stream_options.include_usage`` chunk: no choices, exact usage."""
        return usage_chunk(self._id or _new_id("chatcmpl-"), self._created, self.model, self.usage)


def parse_gemini_error(body: bytes) -> tuple[str, str | None]:
    """(message, status such as ``RESOURCE_EXHAUSTED``) from a Google error body.

    Streaming endpoints without ``alt=sse`` wrap the error in a JSON list; proxies in
    front of Google may answer with HTML or plain text.
    """
    text = body.decode("utf-8", "replace").strip()
    fallback = text[:500] or "empty error body from Gemini"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return fallback, None
    if isinstance(data, list):
        data = data[0] if data else None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str) and err:
        return err, None
    if not isinstance(err, dict):
        return fallback, None
    message = err.get("message")
    status = err.get("status")
    return (
        message if isinstance(message, str) and message else fallback,
        status if isinstance(status, str) and status else None,
    )
