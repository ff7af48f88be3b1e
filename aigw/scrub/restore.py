"""Putting the original values back where the answer quotes their placeholders.

The provider saw ``[EMAIL_1]``; the client should read the address. A
:class:`Restorer` holds one request's placeholders and rewrites the answer in the
client's own wire format, so it serves every path an answer takes to the client:
a JSON answer (:meth:`Restorer.json`) and a stream (:meth:`Restorer.stream`), live
from a provider or replayed.

In a stream a placeholder may arrive split across events (``"[EMA"``, ``"IL_1] is"``).
The text deltas of each channel (an OpenAI choice's content or a tool call's
arguments, an Anthropic content block, a Responses output item, a Gemini candidate)
hold back a trailing piece that could still become a placeholder and prepend it to
that channel's next delta. Any other event (a block's stop, a finish, the end)
first flushes what is held, as a delta event of its own. Values put back into JSON
text (tool-call arguments) are JSON-escaped.

Only streams in which the request had something redacted pay for any of this; the
others are not wrapped at all. Events are re-encoded only when they may hold a
placeholder (a ``[`` followed by a capital letter or a closing quote) or while a
piece is held back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import orjson

from aigw.sse import Event, SSEParser, encode

JSON = dict[str, Any]
# A delta event for a held-back piece: (payload, SSE event name).
Make = Callable[[str], tuple[JSON, str | None]]
# One text delta in an event: (channel, holder, field, is JSON text, final, make).
Delta = tuple[Hashable, JSON, str, bool, bool, Make]

# Fields whose strings are JSON text (tool-call arguments): values go in escaped.
_JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})
# Bytes that may start a placeholder or a piece of one inside a JSON string.
_HINT = re.compile(rb'\[[A-Z"]')

# The stream format each chat endpoint answers in.
STREAM_KINDS = {
    "chat.completions": "openai",
    "responses": "responses",
    "messages": "anthropic",
    "generateContent": "gemini",
}


class Restorer:
    """One request's placeholders, and how to put their values back."""

    def __init__(self, originals: Mapping[str, str], kind: str | None) -> None:
        self.originals = dict(originals)
        self.kind = kind
        self._pattern = re.compile(
            "|".join(re.escape(p) for p in sorted(self.originals, key=len, reverse=True))
        )
        self._escaped = {p: orjson.dumps(v).decode()[1:-1] for p, v in self.originals.items()}
        self._needles = [p.encode() for p in self.originals]
        self._prefixes = frozenset(p[:i] for p in self.originals for i in range(1, len(p)))
        self._longest = max(map(len, self.originals))

    def text(self, text: str, json_text: bool = False) -> str:
        if "[" not in text:
            return text
        table = self._escaped if json_text else self.originals
        return self._pattern.sub(lambda m: table[m.group()], text)

    def walk(self, obj: Any, key: str | None = None) -> Any:
        """``obj`` (decoded JSON) with every placeholder replaced, in place."""
        if isinstance(obj, str):
            return self.text(obj, key in _JSON_TEXT_KEYS)
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, (str, dict, list)):
                    obj[k] = self.walk(v, k)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                if isinstance(v, (str, dict, list)):
                    obj[i] = self.walk(v, key)
        return obj

    def json(self, raw: bytes) -> bytes:
        """A JSON answer with the values back (unchanged if it quotes no placeholder)."""
        if not any(n in raw for n in self._needles):
            return raw
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        return orjson.dumps(self.walk(obj))

    def split(self, text: str) -> tuple[str, str]:
        """``text`` without a trailing piece that could still become a placeholder,
        and that piece."""
        i = text.rfind("[", max(0, len(text) - self._longest + 1))
        if i >= 0 and text[i:] in self._prefixes:
            return text[:i], text[i:]
        return text, ""

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self, _DELTAS.get(self.kind or "", _no_deltas))


class StreamRestorer:
    """Restores a stream's bytes (whole SSE events, as a relay produces them)."""

    def __init__(self, restorer: Restorer, deltas: Callable[[JSON, str | None], list[Delta]]):
        self.r = restorer
        self.deltas = deltas
        self.parser = SSEParser()
        self.held: dict[Hashable, tuple[str, bool, Make]] = {}

    def feed(self, data: bytes) -> bytes:
        if not data or (not self.held and _HINT.search(data) is None):
            return data
        return b"".join([self._event(ev) for ev in self.parser.feed(data)])

    def flush(self) -> bytes:
        """What is still held back, as delta events of their own."""
        if not self.held:
            return b""
        out = []
        for piece, json_text, make in self.held.values():
            payload, name = make(self.r.text(piece, json_text))
            out.append(encode(payload, name))
        self.held.clear()
        return b"".join(out)

    def _event(self, ev: Event) -> bytes:
        data = ev.data
        if not data.startswith(b"{"):  # [DONE]
            return self.flush() + ev.encode()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.flush() + ev.encode()
        if not isinstance(obj, dict):
            return self.flush() + ev.encode()
        deltas = self.deltas(obj, ev.event)
        if not deltas:
            flushed = self.flush()
            if _HINT.search(data) is None:
                return flushed + ev.encode()
            return flushed + encode(self.r.walk(obj), ev.event)
        r = self.r
        held = self.held
        for channel, holder, field, json_text, final, make in deltas:
            prev = held.pop(channel, None)
            text = holder[field] if prev is None else prev[0] + holder[field]
            head, piece = (text, "") if final else r.split(text)
            holder[field] = r.text(head, json_text)
            if piece:
                held[channel] = (piece, json_text, make)
        return encode(r.walk(obj), ev.event)


# -- where the text deltas are, per stream format -------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _index(value: Any) -> int | str | None:
    """A channel's index as sent, if it can key a channel (else one shared channel)."""
    return value if isinstance(value, (int, str)) else None


def _no_deltas(obj: JSON, event: str | None) -> list[Delta]:
    return []


def _openai(obj: JSON, event: str | None) -> list[Delta]:
    out: list[Delta] = []
    base: JSON = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
    for choice in _list(obj.get("choices")):
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        i = _index(choice.get("index", 0))
        final = choice.get("finish_reason") is not None
        for field in ("content", "refusal"):
            if isinstance(delta.get(field), str):
                out.append((("c", i, field), delta, field, False, final, _chunk(base, i, field)))
        for call in _list(delta.get("tool_calls")):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                j = _index(call.get("index", 0))
                make = _tool_chunk(base, i, j)
                out.append((("t", i, j), fn, "arguments", True, final, make))
    return out


def _chunk(base: JSON, i: Any, field: str) -> Make:
    def make(text: str) -> tuple[JSON, str | None]:
        choice = {"index": i, "delta": {field: text}, "finish_reason": None}
        return {**base, "choices": [choice]}, None

    return make


def _tool_chunk(base: JSON, i: Any, j: Any) -> Make:
    def make(text: str) -> tuple[JSON, str | None]:
        calls = [{"index": j, "function": {"arguments": text}}]
        choice = {"index": i, "delta": {"tool_calls": calls}, "finish_reason": None}
        return {**base, "choices": [choice]}, None

    return make


def _responses(obj: JSON, event: str | None) -> list[Delta]:
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind.endswith(".delta"):
        return []
    if not isinstance(obj.get("delta"), str):
        return []
    channel = (
        kind,
        _index(obj.get("item_id")),
        _index(obj.get("output_index")),
        _index(obj.get("content_index")),
    )
    template = dict(obj)

    def make(text: str) -> tuple[JSON, str | None]:
        return {**template, "delta": text}, event

    return [(channel, obj, "delta", "arguments" in kind, False, make)]


_ANTHROPIC_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json"}


def _anthropic(obj: JSON, event: str | None) -> list[Delta]:
    if obj.get("type") != "content_block_delta":
        return []
    delta = obj.get("delta")
    kind = delta.get("type") if isinstance(delta, dict) else None
    field = _ANTHROPIC_FIELDS.get(kind) if isinstance(kind, str) else None
    if field is None or not isinstance(delta, dict) or not isinstance(delta.get(field), str):
        return []  # thinking deltas are signed: left as they are
    index = _index(obj.get("index", 0))

    def make(text: str) -> tuple[JSON, str | None]:
        payload: JSON = {"type": "content_block_delta", "index": index}
        payload["delta"] = {"type": kind, field: text}
        return payload, "content_block_delta"

    return [(("a", index), delta, field, field == "partial_json", False, make)]


def _gemini(obj: JSON, event: str | None) -> list[Delta]:
    out: list[Delta] = []
    base: JSON = {k: obj[k] for k in ("modelVersion", "responseId") if k in obj}
    for n, cand in enumerate(_list(obj.get("candidates"))):
        content = cand.get("content") if isinstance(cand, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            continue
        index = _index(cand.get("index", n))
        final = cand.get("finishReason") is not None
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                if part.get("thought"):
                    continue
                out.append((("g", index), part, "text", False, final, _gemini_chunk(base, index)))
    return out


def _gemini_chunk(base: JSON, index: Any) -> Make:
    def make(text: str) -> tuple[JSON, str | None]:
        cand = {"content": {"parts": [{"text": text}], "role": "model"}, "index": index}
        return {"candidates": [cand], **base}, None

    return make


_DELTAS: dict[str, Callable[[JSON, str | None], list[Delta]]] = {
    "openai": _openai,
    "responses": _responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
}
