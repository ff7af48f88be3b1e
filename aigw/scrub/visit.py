"""The texts a provider would see in a request, per client format.

``visit(endpoint, body, scrub)`` replaces, in place, every text of ``body`` by
``scrub(text)``: messages and system prompts, tool-call arguments and tool results,
the Responses API's input and instructions, embeddings input, Gemini contents and
system instructions. Images, audio and files are passed as they are, and so are
signed reasoning blocks (Anthropic thinking), which the provider verifies.

Tool-call arguments are JSON text: when they parse, the strings inside are scrubbed
and the JSON written again, so a value is found whatever escaping it had.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

Scrub = Callable[[str], str]


def _list(value: Any) -> list[Any]:
    """``value`` if it is a list, else nothing to visit (hostile bodies are validated
    only as far as the gateway needs; the provider refuses the rest)."""
    return value if isinstance(value, list) else []


def _kind(item: dict[str, Any]) -> str | None:
    kind = item.get("type")
    return kind if isinstance(kind, str) else None


# Content-part types that carry text, across the formats.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "refusal", "summary_text"})


def deep(value: Any, scrub: Scrub) -> Any:
    """Every string inside ``value`` (tool inputs and results are free-form JSON)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (str, dict, list)):
                value[k] = deep(v, scrub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (str, dict, list)):
                value[i] = deep(v, scrub)
    return value


def json_text(text: str, scrub: Scrub) -> str:
    """Tool-call arguments: the strings inside the JSON, else the text itself."""
    if not text or text[0] not in "{[":
        return scrub(text)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return scrub(text)
    changed = False

    def tracked(inner: str) -> str:
        nonlocal changed
        out = scrub(inner)
        changed = changed or out is not inner
        return out

    value = deep(value, tracked)
    return orjson.dumps(value).decode() if changed else text


def _parts(content: Any, scrub: Scrub) -> Any:
    """A message's content: a string, or a list of typed parts (text parts scrubbed)."""
    if isinstance(content, str):
        return scrub(content)
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                kind = _kind(part)
                if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
                    part["text"] = scrub(part["text"])
                elif kind == "refusal" and isinstance(part.get("refusal"), str):
                    part["refusal"] = scrub(part["refusal"])
    return content


# -- OpenAI chat completions ---------------------------------------------------------


def chat(body: dict[str, Any], scrub: Scrub) -> None:
    for m in _list(body.get("messages")):
        if not isinstance(m, dict):
            continue
        if "content" in m:
            m["content"] = _parts(m["content"], scrub)
        for call in _list(m.get("tool_calls")):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = json_text(fn["arguments"], scrub)
        fn = m.get("function_call")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            fn["arguments"] = json_text(fn["arguments"], scrub)


# -- Anthropic messages --------------------------------------------------------------


def _blocks(content: Any, scrub: Scrub) -> Any:
    if isinstance(content, str):
        return scrub(content)
    if not isinstance(content, list):
        return content
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = _kind(block)
        if kind == "text" and isinstance(block.get("text"), str):
            block["text"] = scrub(block["text"])
        elif kind == "tool_use" and "input" in block:
            block["input"] = deep(block["input"], scrub)
        elif kind in ("tool_result", "search_result") and "content" in block:
            block["content"] = _blocks(block["content"], scrub)
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict):
                if source.get("type") == "text" and isinstance(source.get("data"), str):
                    source["data"] = scrub(source["data"])
                elif source.get("type") == "content":
                    source["content"] = _blocks(source.get("content"), scrub)
        # image, thinking, redacted_thinking: as they are
    return content


def messages(body: dict[str, Any], scrub: Scrub) -> None:
    if "system" in body:
        body["system"] = _blocks(body["system"], scrub)
    for m in _list(body.get("messages")):
        if isinstance(m, dict) and "content" in m:
            m["content"] = _blocks(m["content"], scrub)


# -- Gemini --------------------------------------------------------------------------


def _gemini_parts(content: Any, scrub: Scrub) -> None:
    if isinstance(content, str):
        return
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in _list(parts):
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str) and not part.get("thought"):
            part["text"] = scrub(part["text"])
        for name, field in (
            ("functionCall", "args"),
            ("function_call", "args"),
            ("functionResponse", "response"),
            ("function_response", "response"),
        ):
            inner = part.get(name)
            if isinstance(inner, dict) and field in inner:
                inner[field] = deep(inner[field], scrub)


def gemini(body: dict[str, Any], scrub: Scrub) -> None:
    for content in _list(body.get("contents")):
        _gemini_parts(content, scrub)
    for key in ("systemInstruction", "system_instruction"):
        system = body.get(key)
        if isinstance(system, str):
            body[key] = scrub(system)
        elif system is not None:
            _gemini_parts(system, scrub)


def gemini_embed(body: dict[str, Any], scrub: Scrub) -> None:
    if "content" in body:
        _gemini_parts(body["content"], scrub)
    for req in _list(body.get("requests")):
        if isinstance(req, dict):
            _gemini_parts(req.get("content"), scrub)


# -- OpenAI embeddings and Responses -------------------------------------------------


def embeddings(body: dict[str, Any], scrub: Scrub) -> None:
    data = body.get("input")
    if isinstance(data, str):
        body["input"] = scrub(data)
    elif isinstance(data, list):
        body["input"] = [scrub(x) if isinstance(x, str) else x for x in data]


def responses(body: dict[str, Any], scrub: Scrub) -> None:
    if isinstance(body.get("instructions"), str):
        body["instructions"] = scrub(body["instructions"])
    data = body.get("input")
    if isinstance(data, str):
        body["input"] = scrub(data)
        return
    for item in _list(data):
        if not isinstance(item, dict):
            continue
        kind = _kind(item)
        if (kind is None or kind == "message") and "content" in item:
            item["content"] = _parts(item["content"], scrub)
        elif kind == "function_call" and isinstance(item.get("arguments"), str):
            item["arguments"] = json_text(item["arguments"], scrub)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if isinstance(output, str):
                item["output"] = json_text(output, scrub)
            else:
                item["output"] = _parts(output, scrub)
        elif kind == "custom_tool_call" and isinstance(item.get("input"), str):
            item["input"] = scrub(item["input"])


# Each endpoint's visitor, by the name the ledger gives the endpoint.
VISITORS: dict[str, Callable[[dict[str, Any], Scrub], None]] = {
    "chat.completions": chat,
    "messages": messages,
    "messages.count_tokens": messages,
    "generateContent": gemini,
    "countTokens": gemini,
    "embedContent": gemini_embed,
    "batchEmbedContents": gemini_embed,
    "embeddings": embeddings,
    "responses": responses,
}


def visit(endpoint: str, body: dict[str, Any], scrub: Scrub) -> None:
    visitor = VISITORS.get(endpoint)
    if visitor is not None:
        visitor(body, scrub)
