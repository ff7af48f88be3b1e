"""Replaying a stored answer, as JSON or as an SSE stream in the client's format.

A chat answer is stored once, in the hub format (an OpenAI chat completion), however
it came (JSON or stream, any provider): :func:`assemble` builds it from a stream's hub
chunks. A hit is rendered for the client the way a translated live answer is: JSON
through the client format's ``from_hub``, a stream by replaying the answer as an
OpenAI stream (:func:`hub_sse`) through the same relay and client stream encoder a
live translated stream goes through (:meth:`Relayer.relay`, ``fmt.stream``), so
whatever wraps the live answer path (the ledger commit before the end, the cost
comment, a restore of scrubbed values) applies to replays too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from aigw.cache.entry import HUB, Entry
from aigw.pipeline.context import Context
from aigw.pipeline.relay import Translating
from aigw.providers.openai import OpenAIHubStream
from aigw.sse import DONE, encode
from aigw.translate.common import openai_usage
from aigw.usage import Usage

if TYPE_CHECKING:
    from aigw.pipeline.forward import Forward

JSON = dict[str, Any]


class CorruptEntry(ValueError):
    """A stored answer that cannot be decoded: dropped, and the call goes upstream."""


# -- storing -------------------------------------------------------------------------


def assemble(chunks: list[JSON], usage: Usage | None) -> JSON:
    """One chat completion from a stream's hub chunks: text deltas concatenated, tool
    calls merged by index, the last finish reason of each choice."""
    first = chunks[0] if chunks else {}
    choices: dict[int, JSON] = {}
    calls: dict[int, dict[int, JSON]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            i = choice.get("index", 0)
            out = choices.setdefault(
                i, {"index": i, "message": {"role": "assistant", "content": None}}
            )
            message = out["message"]
            delta = choice.get("delta") or {}
            for name, value in delta.items():
                if name == "tool_calls":
                    for call in value or ():
                        slot = calls.setdefault(i, {}).setdefault(
                            call.get("index", 0),
                            {"id": None, "type": "function", "function": {"arguments": ""}},
                        )
                        for k, v in call.items():
                            if k == "function":
                                fn = slot["function"]
                                for fk, fv in (v or {}).items():
                                    if fk == "arguments":
                                        fn["arguments"] += fv or ""
                                    elif fv is not None:
                                        fn[fk] = fv
                            elif k != "index" and v is not None:
                                slot[k] = v
                elif name == "role":
                    continue
                elif isinstance(value, str):
                    message[name] = (message.get(name) or "") + value
                elif value is not None:
                    message[name] = value
            if choice.get("finish_reason"):
                out["finish_reason"] = choice["finish_reason"]
    for i, by_index in calls.items():
        choices[i]["message"]["tool_calls"] = [by_index[k] for k in sorted(by_index)]
    hub: JSON = {
        "id": first.get("id") or "chatcmpl-cached",
        "object": "chat.completion",
        "created": first.get("created") or 0,
        "model": first.get("model") or "",
        "choices": [{"finish_reason": "stop", **choices[i]} for i in sorted(choices)],
    }
    if usage is not None:
        hub["usage"] = openai_usage(usage)
    return hub


# -- replaying -----------------------------------------------------------------------


def hub_sse(hub: JSON) -> bytes:
    """A stored hub answer as the OpenAI stream that would have carried it: one delta
    per choice with everything, its finish, the usage chunk, ``[DONE]``."""
    base = {
        "id": hub.get("id") or "chatcmpl-cached",
        "object": "chat.completion.chunk",
        "created": hub.get("created") or 0,
        "model": hub.get("model") or "",
    }
    out: list[bytes] = []
    for choice in hub.get("choices") or ():
        i = choice.get("index", 0)
        message = dict(choice.get("message") or {})
        calls = message.pop("tool_calls", None)
        delta: JSON = {k: v for k, v in message.items() if v is not None}
        delta["role"] = "assistant"
        if calls:
            delta["tool_calls"] = [{"index": n, **c} for n, c in enumerate(calls)]
        out.append(encode({**base, "choices": [{"index": i, "delta": delta}]}))
        out.append(
            encode(
                {
                    **base,
                    "choices": [
                        {"index": i, "delta": {}, "finish_reason": choice.get("finish_reason")}
                    ],
                }
            )
        )
    if hub.get("usage"):
        out.append(encode({**base, "choices": [], "usage": hub["usage"]}))
    out.append(DONE)
    return b"".join(out)


class Stored:
    """A stored stream as an upstream response, for the relay."""

    status = 200
    headers: Mapping[str, str] = {}

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self) -> bytes:
        return self.data

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.data

    def close(self) -> None:
        pass


def decode(entry: Entry) -> tuple[JSON | bytes, Usage | None]:
    """The stored answer (hub JSON, or raw bytes) and the original usage; raises
    :class:`CorruptEntry`. Memoised on the entry (the replay never changes them)."""
    decoded: tuple[JSON | bytes, Usage | None] | None = entry.memo.get("decoded")
    if decoded is None:
        decoded = entry.memo["decoded"] = _decode(entry)
    return decoded


def _decode(entry: Entry) -> tuple[JSON | bytes, Usage | None]:
    try:
        usage = None if entry.usage is None else Usage(**orjson.loads(entry.usage))
        if entry.kind != HUB:
            orjson.loads(entry.body)  # sent as it is: it must at least be JSON
            return entry.body, usage
        hub = orjson.loads(entry.body)
        if not isinstance(hub, dict) or not isinstance(hub.get("choices"), list):
            raise CorruptEntry("not a chat completion")
        return hub, usage
    except (ValueError, TypeError) as exc:
        raise CorruptEntry(str(exc)) from None


async def replay(forward: Forward, ctx: Context, entry: Entry) -> web.StreamResponse:
    """Answer ``ctx`` with a stored answer, through forward's answer path; raises
    :class:`CorruptEntry` (before anything is recorded or sent)."""
    call = ctx.call
    assert call is not None
    answer, usage = decode(entry)
    # A copy: the ledger's usage is the context's, and the memo is shared by hits.
    usage = Usage() if usage is None else replace(usage)
    if isinstance(answer, bytes):
        return await forward.finish_json(ctx, answer, usage, 0)
    fmt = ctx.fmt
    assert fmt is not None and ctx.request is not None
    model = str(answer.get("model") or ctx.model or "")
    memo = entry.memo
    if not call.stream:
        # One client format per endpoint: the endpoint names the rendering.
        body: bytes | None = memo.get(ctx.endpoint)
        if body is None:
            try:
                body = memo[ctx.endpoint] = orjson.dumps(fmt.from_hub(answer, model))
            except Exception as exc:  # a stored answer the client format cannot render
                raise CorruptEntry(f"cannot render: {exc}") from None
        return await forward.finish_json(ctx, body, usage, 0)
    sse: bytes | None = memo.get("sse")
    if sse is None:
        sse = memo["sse"] = hub_sse(answer)
    relay = Translating(OpenAIHubStream(model), fmt.stream(call, model))
    return await forward.relayer.relay(ctx, ctx.request, Stored(sse), relay, fmt.stream_error, 0)
