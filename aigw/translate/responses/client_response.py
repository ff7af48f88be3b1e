"""OpenAI chat completion and chunks (the hub) -> Responses API response and stream events.

What a Responses client receives when a provider without that API answered. The
shapes follow the openai-python SDK's ``types/responses`` models and the event
sequence of recorded OpenAI streams: ``response.created``, ``response.in_progress``,
per output item ``output_item.added`` / deltas / ``output_item.done``, and one
terminal ``response.completed`` (``response.incomplete`` when the output limit or a
content filter cut the answer) that carries the usage. Every event has a
``sequence_number``.

Output order is the model's: reasoning (from the hub's ``reasoning_content``, as a
summary, which is what clients display), then text, then function calls. The
response echoes the request's settings as OpenAI does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aigw.translate.common import JSON, TranslationError, content_text, tool_call_slot
from aigw.usage import Usage, usage_from_openai

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def responses_usage(u: Usage) -> JSON:
    """A Responses ``usage`` object."""
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def _usage(u: object) -> Usage | None:
    """The hub's usage, with cache writes where the hub carries them."""
    usage = usage_from_openai(u)
    if usage is not None and isinstance(u, dict):
        details = u.get("prompt_tokens_details")
        writes = details.get("cache_write_tokens") if isinstance(details, dict) else None
        if isinstance(writes, int) and not isinstance(writes, bool) and writes > 0:
            usage.cache_write_tokens = writes
    return usage


def _suffix(value: object) -> str:
    text = value if isinstance(value, str) and value else f"aigw{time.time_ns():x}"
    for prefix in ("chatcmpl-", "msg_", "resp_"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _echo_tools(request: JSON) -> list[JSON]:
    tools = request.get("tools")
    return tools if isinstance(tools, list) else []


def _envelope(request: JSON, resp_id: str, created: int, model: str) -> JSON:
    """The response object without output, status or usage, echoing the request."""
    text = request.get("text")
    reasoning = request.get("reasoning")
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {
            "effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
            "summary": reasoning.get("summary") if isinstance(reasoning, dict) else None,
        },
        "service_tier": "default",
        "store": False,  # nothing is stored, whatever the request asked
        "temperature": request.get("temperature", 1.0),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": _echo_tools(request),
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def _finish(response: JSON, finish: object, usage: Usage | None) -> None:
    reason = _INCOMPLETE.get(finish) if isinstance(finish, str) else None
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = responses_usage(usage) if usage is not None else None


def _message_item(item_id: str, text: str, status: str = "completed") -> JSON:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _reasoning_item(item_id: str, text: str) -> JSON:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def chat_to_response(resp: JSON, *, model: str, request: JSON) -> JSON:
    """OpenAI ``chat.completion`` -> Responses ``response`` object."""
    if not isinstance(resp, dict):
        raise TranslationError("chat completion must be a JSON object", param="body")
    choices = resp.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        raise TranslationError("chat completion has no choices", param="choices")
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    suffix = _suffix(resp.get("id"))
    created = resp.get("created")
    out = _envelope(
        request, "resp_" + suffix, created if isinstance(created, int) else int(time.time()), model
    )
    items: list[JSON] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        items.append(_reasoning_item("rs_" + suffix, reasoning))
    text = content_text(message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not text:
        items.append(
            {
                "id": "msg_" + suffix,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": refusal}],
            }
        )
    elif text:
        items.append(_message_item("msg_" + suffix, text))
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else None
        arguments, name = fn.get("arguments"), fn.get("name")
        items.append(
            _call_item(
                f"fc_{suffix}_{k}",
                call_id or f"call_{suffix}_{k}",
                name if isinstance(name, str) else "",
                arguments if isinstance(arguments, str) else "{}",
                "completed",
            )
        )
    out["output"] = items
    _finish(out, choice.get("finish_reason"), _usage(resp.get("usage")) or Usage())
    return out


@dataclass(slots=True)
class _Item:
    """An output item being streamed."""

    kind: str  # "reasoning", "message" or "function_call"
    index: int
    item_id: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ChatToResponsesStream:
    """OpenAI ``chat.completion.chunk`` dicts -> Responses stream (event, data) pairs.

    One output item is open at a time; a delta of another kind closes it. The
    terminal event goes out from :meth:`finish`, with the final usage.
    """

    def __init__(self, *, model: str, request: JSON) -> None:
        self.model = model
        self.request = request
        self._seq = 0
        self._started = False
        self._ended = False
        self._response: JSON = {}
        self._suffix = ""
        self._open: _Item | None = None
        self._items: list[JSON] = []
        self._tools: dict[int, _Item] = {}
        self._finish: str | None = None
        self.usage: Usage | None = None

    def _event(self, kind: str, data: JSON) -> tuple[str, JSON]:
        event = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return kind, event

    def _start(self, chunk: JSON) -> list[tuple[str, JSON]]:
        self._started = True
        self._suffix = _suffix(chunk.get("id"))
        created = chunk.get("created")
        self._response = _envelope(
            self.request,
            "resp_" + self._suffix,
            created if isinstance(created, int) else int(time.time()),
            self.model,
        )
        return [
            self._event("response.created", {"response": dict(self._response)}),
            self._event("response.in_progress", {"response": dict(self._response)}),
        ]

    def _open_item(
        self, kind: str, call_id: str = "", name: str = ""
    ) -> tuple[_Item, list[tuple[str, JSON]]]:
        out = self._close()
        index = len(self._items)
        prefix = {"reasoning": "rs_", "message": "msg_", "function_call": "fc_"}[kind]
        item = _Item(kind, index, f"{prefix}{self._suffix}_{index}", call_id=call_id, name=name)
        self._open = item
        self._items.append({})  # placeholder, filled when the item is done
        if kind == "reasoning":
            added: JSON = {"id": item.item_id, "type": "reasoning", "summary": []}
            part: JSON = {"type": "summary_text", "text": ""}
            return item, [
                *out,
                self._event("response.output_item.added", {"output_index": index, "item": added}),
                self._event(
                    "response.reasoning_summary_part.added",
                    {
                        "item_id": item.item_id,
                        "output_index": index,
                        "summary_index": 0,
                        "part": part,
                    },
                ),
            ]
        if kind == "message":
            added = {
                "id": item.item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            return item, [
                *out,
                self._event("response.output_item.added", {"output_index": index, "item": added}),
                self._event(
                    "response.content_part.added",
                    {
                        "item_id": item.item_id,
                        "output_index": index,
                        "content_index": 0,
                        "part": part,
                    },
                ),
            ]
        added = _call_item(item.item_id, item.call_id, item.name, "", "in_progress")
        return item, [
            *out,
            self._event("response.output_item.added", {"output_index": index, "item": added}),
        ]

    def _close(self) -> list[tuple[str, JSON]]:
        item, self._open = self._open, None
        if item is None:
            return []
        text = "".join(item.text)
        ids: JSON = {"item_id": item.item_id, "output_index": item.index}
        out: list[tuple[str, JSON]] = []
        if item.kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            done = _reasoning_item(item.item_id, text)
            out += [
                self._event(
                    "response.reasoning_summary_text.done",
                    {**ids, "summary_index": 0, "text": text},
                ),
                self._event(
                    "response.reasoning_summary_part.done",
                    {**ids, "summary_index": 0, "part": part},
                ),
            ]
        elif item.kind == "message":
            done = _message_item(item.item_id, text)
            out += [
                self._event(
                    "response.output_text.done",
                    {**ids, "content_index": 0, "text": text, "logprobs": []},
                ),
                self._event(
                    "response.content_part.done",
                    {**ids, "content_index": 0, "part": done["content"][0]},
                ),
            ]
        else:
            arguments = text or "{}"
            done = _call_item(item.item_id, item.call_id, item.name, arguments, "completed")
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    {**ids, "name": item.name, "arguments": arguments},
                )
            )
        self._items[item.index] = done
        out.append(
            self._event("response.output_item.done", {"output_index": item.index, "item": done})
        )
        return out

    def _delta(self, kind: str, text: str) -> list[tuple[str, JSON]]:
        out: list[tuple[str, JSON]] = []
        item = self._open
        if item is None or item.kind != kind:
            item, out = self._open_item(kind)
        item.text.append(text)
        ids: JSON = {"item_id": item.item_id, "output_index": item.index}
        if kind == "reasoning":
            out.append(
                self._event(
                    "response.reasoning_summary_text.delta",
                    {**ids, "summary_index": 0, "delta": text},
                )
            )
        else:
            out.append(
                self._event(
                    "response.output_text.delta",
                    {**ids, "content_index": 0, "delta": text, "logprobs": []},
                )
            )
        return out

    def _tool_calls(self, calls: list[object]) -> list[tuple[str, JSON]]:
        out: list[tuple[str, JSON]] = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            key = tool_call_slot(call, len(self._tools))
            fn = call.get("function")
            fn = fn if isinstance(fn, dict) else {}
            item = self._tools.get(key)
            if item is None:
                call_id = call.get("id")
                name = fn.get("name")
                n = len(self._tools)
                item, events = self._open_item(
                    "function_call",
                    call_id=call_id
                    if isinstance(call_id, str) and call_id
                    else f"call_{self._suffix}_{n}",
                    name=name if isinstance(name, str) else "",
                )
                self._tools[key] = item
                out += events
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                item.text.append(arguments)
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        {"item_id": item.item_id, "output_index": item.index, "delta": arguments},
                    )
                )
        return out

    def feed(self, chunk: JSON) -> list[tuple[str, JSON]]:
        """One hub chunk -> Responses events. A usage chunk only records the usage."""
        if self._ended or not isinstance(chunk, dict):
            return []
        out: list[tuple[str, JSON]] = []
        if not self._started:
            out += self._start(chunk)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # one answer per response
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out += self._delta("reasoning", reasoning)
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out += self._delta("message", text)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                out += self._tool_calls(calls)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish = finish
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        return out

    def finish(self) -> list[tuple[str, JSON]]:
        """Close the open item and send the terminal event with the usage."""
        if self._ended:
            return []
        self._ended = True
        out: list[tuple[str, JSON]] = []
        if not self._started:
            out += self._start({})
        out += self._close()
        response = dict(self._response)
        response["output"] = [item for item in self._items if item]
        _finish(response, self._finish, self.usage or Usage())
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        out.append(self._event(kind, {"response": response}))
        return out
