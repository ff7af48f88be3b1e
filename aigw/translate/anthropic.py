"""Translation between OpenAI chat completions (the hub) and the Anthropic Messages API.

Pure code: request/response functions and two small stateful stream translators, no I/O.

Design choices
--------------
* **System prompts.** OpenAI ``system`` and ``developer`` messages, wherever they appear,
  are hoisted in order into Anthropic's top-level ``system``: Anthropic has no
  mid-conversation system turn.
* **Alternation.** Anthropic wants user/assistant turns to alternate, so consecutive
  messages that land on the same Anthropic role are merged into one turn. OpenAI ``tool``
  messages become ``tool_result`` blocks of a user turn (a run of them merges into one
  message) and ``tool_result`` blocks are moved to the front of their turn, where
  Anthropic requires them.
* **JSON mode.** The stable Messages API has no ``response_format``. It is emulated with
  a forced call of a synthetic tool, :data:`JSON_TOOL_NAME`, whose ``input_schema`` is
  the requested schema (``{"type": "object"}`` for ``json_object``). The response
  translators turn that tool call back into message *content* (the JSON text) with
  finish_reason ``stop``, in both the plain and the streamed direction. When the
  client also offers tools with tool_choice ``auto``, the synthetic tool is added next
  to them with tool_choice ``any``: the model either calls a client tool or answers
  through the synthetic one. With ``required`` or a named tool the answer is a tool call
  anyway, so no synthetic tool is added. The name is namespaced so a client tool
  cannot be mistaken for it.
* **reasoning_effort** maps to extended thinking ``{"type": "enabled",
  "budget_tokens": N}`` with N = 1024 for minimal/low, 4096 for medium, 16384 for high,
  32768 for xhigh (``none`` means no thinking). ``max_tokens`` must exceed the budget:
  without an explicit client limit the default limit is raised by the budget; with an
  explicit limit the budget shrinks to fit (never below Anthropic's 1024 minimum).
  Thinking is dropped with a warning when it cannot work: the limit is too small,
  tool_choice forces a tool (Anthropic forbids both), or the conversation is in the
  middle of a tool loop (Anthropic would require the earlier assistant turn to start
  with a signed thinking block, which an OpenAI history cannot carry). While thinking
  is on, ``temperature`` other than 1 and ``top_p`` below 0.95 are dropped with a
  warning, as Anthropic rejects them.
* **Thinking output** is not part of the OpenAI message; it is surfaced as
  ``reasoning_content`` (message field and stream delta) and counted in usage
  (``output_tokens_details.thinking_tokens`` -> ``reasoning_tokens``).
* **Temperature** is clamped to Anthropic's 0..1 range with a warning.
* **Unsupported parameters.** Benign ones are dropped with a warning; meaning-changing
  ones (``n > 1``, logprobs, audio output, file ids, web search...) raise
  :class:`TranslationError` under ``opts.strict`` and are dropped with a warning
  otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from aigw.translate.common import JSON, Translated, TranslateOptions, TranslationError
from aigw.usage import Usage, usage_from_openai

__all__ = [
    "DEFAULT_VERSION",
    "JSON_TOOL_NAME",
    "THINKING_BUDGETS",
    "AnthropicStreamError",
    "ChatToMessagesStream",
    "MessagesToChatStream",
    "chat_to_messages_request",
    "chat_to_messages_response",
    "messages_to_chat_request",
    "messages_to_chat_response",
    "parse_anthropic_error",
    "usage_from_anthropic",
]

DEFAULT_VERSION = "2023-06-01"
"""Value of the ``anthropic-version`` header."""

JSON_TOOL_NAME = "aigw_json_response"
"""The synthetic tool that carries an emulated ``response_format`` answer."""

THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
}
_MIN_THINKING_BUDGET = 1024

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Dropped with a warning: losing them does not change what the model is asked to do.
_BENIGN = frozenset(
    {
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "service_tier",
        "store",
        "prediction",
        "metadata",
        "prompt_cache_key",
        "prompt_cache_retention",
        "verbosity",
    }
)
# Read by the request translator itself (or by the gateway, for stream_options).
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "reasoning_effort",
        "user",
        "safety_identifier",
        "n",
        "logprobs",
        "top_logprobs",
        "modalities",
        "audio",
        "web_search_options",
    }
)


class AnthropicStreamError(Exception):
    """An ``error`` event arrived in the middle of an Anthropic stream."""

    def __init__(self, message: str, error_type: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


# -- small helpers -------------------------------------------------------------------


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _fail(message: str, param: str) -> TranslationError:
    return TranslationError(message, param=param)


def _strip_prefix(value: object, prefix: str) -> str:
    text = value if isinstance(value, str) and value else "aigw"
    return text[len(prefix) :] if text.startswith(prefix) else text


def _parse_data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<media>;base64,<data>`` -> (media type, base64 data)."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise _fail("only base64 data: URLs are supported", param)
    media = head[5:-7].split(";")[0].strip().lower()
    if media == "image/jpg":
        media = "image/jpeg"
    if not media or not data:
        raise _fail("malformed data: URL", param)
    return media, data


@dataclass
class _Ctx:
    """Per-request state of the OpenAI -> Anthropic request translator."""

    strict: bool
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def unsupported(self, param: str, message: str) -> None:
        """A meaning-changing loss: an error when strict, else a warning."""
        if self.strict:
            raise _fail(message, param)
        self.warn(f"{message}; '{param}' was ignored")


# -- OpenAI chat request -> Anthropic messages request --------------------------------


def _text_of(part: JSON, param: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _fail("text part needs a string 'text'", f"{param}.text")
    return text


def _text_block(text: str, part: JSON | None = None) -> JSON:
    block: JSON = {"type": "text", "text": text}
    # Prompt-caching hints some clients attach to parts; Anthropic understands them.
    if part is not None and isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _media_block(url: str, part: JSON, param: str, ctx: _Ctx) -> JSON | None:
    if url.startswith("data:"):
        media, data = _parse_data_url(url, param)
        source = {"type": "base64", "media_type": media, "data": data}
        if media in _IMAGE_TYPES:
            block: JSON = {"type": "image", "source": source}
        elif media == "application/pdf":
            block = {"type": "document", "source": source}
        else:
            ctx.unsupported(param, f"media type {media!r} is not supported by Anthropic")
            return None
    elif url.startswith(("https://", "http://")):
        block = {"type": "image", "source": {"type": "url", "url": url}}
    else:
        raise _fail("image URL must be an http(s) or data: URL", param)
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _content_blocks(content: object, param: str, ctx: _Ctx, *, media: bool) -> list[JSON]:
    """OpenAI message content (string or parts) -> Anthropic blocks.

    ``media``: whether image/file parts are allowed (user and tool messages).
    Empty text is skipped: Anthropic rejects empty text blocks.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)] if content.strip() else []
    if not isinstance(content, list):
        raise _fail("content must be a string or a list of parts", param)
    blocks: list[JSON] = []
    for k, part in enumerate(content):
        p = f"{param}[{k}]"
        if not isinstance(part, dict):
            raise _fail("content part must be an object", p)
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            text = _text_of(part, p)
            if text.strip():
                blocks.append(_text_block(text, part))
        elif kind == "refusal":
            refusal = part.get("refusal")
            if not isinstance(refusal, str):
                raise _fail("refusal part needs a string 'refusal'", f"{p}.refusal")
            if refusal.strip():
                blocks.append(_text_block(refusal))
        elif kind == "image_url" and media:
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise _fail("image_url part needs a URL", f"{p}.image_url.url")
            block = _media_block(url, part, f"{p}.image_url.url", ctx)
            if block is not None:
                blocks.append(block)
        elif kind == "file" and media:
            file = part.get("file")
            if not isinstance(file, dict):
                raise _fail("file part needs a 'file' object", f"{p}.file")
            data = file.get("file_data")
            if isinstance(data, str) and data:
                block = _media_block(data, part, f"{p}.file.file_data", ctx)
                if block is not None:
                    blocks.append(block)
            else:
                ctx.unsupported(f"{p}.file", "uploaded file ids cannot be sent to Anthropic")
        elif kind == "input_audio" and media:
            ctx.unsupported(p, "audio input is not supported by Anthropic")
        else:
            raise _fail(f"unsupported content part type {kind!r}", f"{p}.type")
    return blocks


def _tool_input(arguments: object, param: str) -> JSON:
    """OpenAI function arguments (a JSON string) -> Anthropic tool_use input (an object)."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        raise _fail("function arguments must be a JSON string", param)
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise _fail("function arguments are not valid JSON", param) from None
    if not isinstance(value, dict):
        raise _fail("function arguments must be a JSON object", param)
    return value


def _tool_use_block(call: object, param: str) -> JSON:
    if not isinstance(call, dict):
        raise _fail("tool call must be an object", param)
    if call.get("type", "function") != "function":
        raise _fail(f"unsupported tool call type {call.get('type')!r}", f"{param}.type")
    fn = call.get("function")
    if not isinstance(fn, dict):
        raise _fail("tool call needs a 'function' object", f"{param}.function")
    call_id, name = call.get("id"), fn.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise _fail("tool call needs an 'id'", f"{param}.id")
    if not isinstance(name, str) or not name:
        raise _fail("tool call needs a function name", f"{param}.function.name")
    input_ = _tool_input(fn.get("arguments"), f"{param}.function.arguments")
    return {"type": "tool_use", "id": call_id, "name": name, "input": input_}


def _tool_result_content(content: object, param: str, ctx: _Ctx) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    return _content_blocks(content, param, ctx, media=True)


class _Turns:
    """Anthropic turns being built; same-role messages merge into one turn."""

    def __init__(self) -> None:
        self.turns: list[JSON] = []

    def add(self, role: str, blocks: list[JSON]) -> None:
        if not blocks:
            return
        if self.turns and self.turns[-1]["role"] == role:
            self.turns[-1]["content"].extend(blocks)
        else:
            self.turns.append({"role": role, "content": list(blocks)})

    def finish(self) -> list[JSON]:
        for turn in self.turns:
            if turn["role"] == "user":
                # Anthropic requires tool results first in the turn after a tool_use.
                blocks = turn["content"]
                turn["content"] = [b for b in blocks if b["type"] == "tool_result"] + [
                    b for b in blocks if b["type"] != "tool_result"
                ]
        if self.turns and self.turns[-1]["role"] == "assistant":
            # A final assistant turn is a prefill; Anthropic rejects trailing whitespace.
            blocks = self.turns[-1]["content"]
            if blocks[-1]["type"] == "text":
                blocks[-1]["text"] = blocks[-1]["text"].rstrip()
                if not blocks[-1]["text"]:
                    blocks.pop()
            if not blocks:
                self.turns.pop()
        return self.turns


def _convert_messages(messages: object, ctx: _Ctx) -> tuple[list[JSON], list[JSON]]:
    """OpenAI messages -> (Anthropic system blocks, Anthropic turns)."""
    if not isinstance(messages, list) or not messages:
        raise _fail("messages must be a non-empty list", "messages")
    system: list[JSON] = []
    turns = _Turns()
    legacy_calls: list[tuple[str, str]] = []  # (name, synthesized id) of function_call turns
    for i, msg in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _fail("message must be an object", p)
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            system.extend(_content_blocks(content, f"{p}.content", ctx, media=False))
        elif role == "user":
            turns.add("user", _content_blocks(content, f"{p}.content", ctx, media=True))
        elif role == "assistant":
            blocks = _content_blocks(content, f"{p}.content", ctx, media=False)
            refusal = msg.get("refusal")
            if not blocks and isinstance(refusal, str) and refusal.strip():
                blocks.append(_text_block(refusal))
            calls = msg.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list):
                    raise _fail("tool_calls must be a list", f"{p}.tool_calls")
                blocks.extend(
                    _tool_use_block(c, f"{p}.tool_calls[{j}]") for j, c in enumerate(calls)
                )
            legacy = msg.get("function_call")
            if isinstance(legacy, dict):
                call_id = f"call_legacy_{i}"
                blocks.append(
                    _tool_use_block(
                        {"id": call_id, "type": "function", "function": legacy},
                        f"{p}.function_call",
                    )
                )
                legacy_calls.append((str(legacy.get("name")), call_id))
            turns.add("assistant", blocks)
        elif role == "tool":
            tool_call_id = msg.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise _fail("tool message needs a 'tool_call_id'", f"{p}.tool_call_id")
            result: JSON = {"type": "tool_result", "tool_use_id": tool_call_id}
            body = _tool_result_content(content, f"{p}.content", ctx)
            if body:
                result["content"] = body
            turns.add("user", [result])
        elif role == "function":
            # Legacy function results name the function, not a call id: answer the
            # most recent unanswered call of that name.
            name = msg.get("name")
            match = next((c for c in reversed(legacy_calls) if c[0] == name), None)
            if match is None:
                raise _fail("function message does not follow a matching function_call", p)
            legacy_calls.remove(match)
            result = {"type": "tool_result", "tool_use_id": match[1]}
            body = _tool_result_content(content, f"{p}.content", ctx)
            if body:
                result["content"] = body
            turns.add("user", [result])
        else:
            raise _fail(f"unsupported role {role!r}", f"{p}.role")
    out = turns.finish()
    if not out:
        raise _fail("Anthropic needs at least one non-empty user or assistant message", "messages")
    return system, out


def _convert_tools(tools: object, ctx: _Ctx) -> list[JSON]:
    if not isinstance(tools, list):
        raise _fail("tools must be a list", "tools")
    out: list[JSON] = []
    for j, tool in enumerate(tools):
        p = f"tools[{j}]"
        if not isinstance(tool, dict):
            raise _fail("tool must be an object", p)
        if tool.get("type", "function") != "function":
            ctx.unsupported(f"{p}.type", f"tool type {tool.get('type')!r} is not supported")
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise _fail("tool needs a 'function' object", f"{p}.function")
        out.append(_function_tool(fn, f"{p}.function", ctx))
    return out


def _function_tool(fn: JSON, param: str, ctx: _Ctx) -> JSON:
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("function needs a name", f"{param}.name")
    if name == JSON_TOOL_NAME:
        raise _fail(f"the tool name {JSON_TOOL_NAME!r} is reserved by the gateway", f"{param}.name")
    schema = fn.get("parameters")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise _fail("function parameters must be a JSON schema object", f"{param}.parameters")
    if "type" not in schema:
        schema = {"type": "object", **schema}
    if schema.get("type") != "object":
        raise _fail("Anthropic tool input schemas must be of type 'object'", f"{param}.parameters")
    out: JSON = {"name": name}
    if isinstance(fn.get("description"), str) and fn["description"]:
        out["description"] = fn["description"]
    out["input_schema"] = schema
    if fn.get("strict"):
        ctx.warn("function 'strict' schema adherence is not supported by Anthropic and was ignored")
    return out


def _tool_choice(choice: object, param: str, ctx: _Ctx) -> JSON | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        kind = choice.get("type", "function")
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if kind == "function" and isinstance(name, str) and name:
            return {"type": "tool", "name": name}
        if kind == "allowed_tools":
            ctx.unsupported(param, "allowed_tools tool_choice is not supported by Anthropic")
            return None
    raise _fail("tool_choice must be auto, none, required or a named function", param)


def _json_tool(response_format: object, ctx: _Ctx) -> JSON | None:
    """``response_format`` -> the synthetic tool emulating it, or None for plain text."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise _fail("response_format must be an object", "response_format")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema: object = {"type": "object"}
        description = "Respond with your complete answer as a JSON object."
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise _fail(
                "json_schema response_format needs a 'json_schema' object", "response_format"
            )
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise _fail("schema must be an object", "response_format.json_schema.schema")
        if schema.get("type") != "object":
            ctx.unsupported(
                "response_format.json_schema.schema",
                "Anthropic can only emulate response schemas whose root type is 'object'",
            )
            return None
        description = "Respond with your complete answer as JSON matching this schema."
        if isinstance(spec.get("description"), str) and spec["description"]:
            description += " " + spec["description"]
    else:
        raise _fail(f"unsupported response_format type {kind!r}", "response_format.type")
    return {"name": JSON_TOOL_NAME, "description": description, "input_schema": schema}


def _in_tool_loop(turns: list[JSON]) -> bool:
    """Whether an assistant tool_use follows the last genuine user input."""
    for turn in reversed(turns):
        blocks = turn["content"]
        if turn["role"] == "assistant" and any(b["type"] == "tool_use" for b in blocks):
            return True
        if turn["role"] == "user" and any(b["type"] != "tool_result" for b in blocks):
            return False
    return False


def _max_tokens(req: JSON) -> int | None:
    """The client's output limit; ``max_completion_tokens`` supersedes ``max_tokens``."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = req.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _fail(f"{key} must be a positive integer", key)
            return value
    return None


def _sampling(req: JSON, body: JSON, ctx: _Ctx) -> None:
    temperature = req.get("temperature")
    if temperature is not None:
        if not _is_number(temperature) or temperature < 0:
            raise _fail("temperature must be a number >= 0", "temperature")
        if temperature > 1:
            ctx.warn(f"temperature {temperature} was clamped to 1, Anthropic's maximum")
            temperature = 1.0
        body["temperature"] = temperature
    top_p = req.get("top_p")
    if top_p is not None:
        if not _is_number(top_p) or not 0 <= top_p <= 1:
            raise _fail("top_p must be a number between 0 and 1", "top_p")
        body["top_p"] = top_p
    top_k = req.get("top_k")
    if top_k is not None:
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise _fail("top_k must be a positive integer", "top_k")
        body["top_k"] = top_k
    stop = req.get("stop")
    if stop is not None:
        seqs = [stop] if isinstance(stop, str) else stop
        if not isinstance(seqs, list) or not all(isinstance(s, str) for s in seqs):
            raise _fail("stop must be a string or a list of strings", "stop")
        if seqs:
            body["stop_sequences"] = seqs


def _unsupported_params(req: JSON, ctx: _Ctx) -> None:
    n = req.get("n")
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _fail("n must be a positive integer", "n")
        if n > 1:
            ctx.unsupported("n", "Anthropic returns a single choice; n > 1 is not supported")
    if req.get("logprobs"):
        ctx.unsupported("logprobs", "logprobs are not supported by Anthropic")
    if req.get("top_logprobs"):
        ctx.unsupported("top_logprobs", "logprobs are not supported by Anthropic")
    if req.get("audio") is not None:
        ctx.unsupported("audio", "audio output is not supported by Anthropic")
    if req.get("web_search_options") is not None:
        ctx.unsupported("web_search_options", "web search options are not supported")
    modalities = req.get("modalities")
    if modalities is not None:
        if isinstance(modalities, list) and all(m == "text" for m in modalities):
            ctx.warn("'modalities' is not supported by Anthropic and was ignored (text only)")
        else:
            ctx.unsupported("modalities", "Anthropic only produces text output")
    for key, value in req.items():
        if value is None or key in _HANDLED:
            continue
        if key in _BENIGN:
            ctx.warn(f"'{key}' is not supported by Anthropic and was ignored")
        else:
            ctx.warn(f"unknown parameter '{key}' was ignored")


def _legacy_functions(req: JSON) -> tuple[object, object]:
    """Map the deprecated ``functions``/``function_call`` to ``tools``/``tool_choice``."""
    tools, choice = req.get("tools"), req.get("tool_choice")
    functions = req.get("functions")
    if tools is None and functions is not None:
        if not isinstance(functions, list):
            raise _fail("functions must be a list", "functions")
        tools = [{"type": "function", "function": f} for f in functions]
    legacy_choice = req.get("function_call")
    if choice is None and legacy_choice is not None:
        if isinstance(legacy_choice, dict):
            choice = {"type": "function", "function": legacy_choice}
        else:
            choice = legacy_choice
    return tools, choice


def chat_to_messages_request(req: JSON, opts: TranslateOptions) -> Translated:
    """OpenAI chat completions request -> Anthropic ``/v1/messages`` body."""
    if not isinstance(req, dict):
        raise _fail("request body must be a JSON object", "body")
    ctx = _Ctx(strict=opts.strict)
    system, turns = _convert_messages(req.get("messages"), ctx)
    body: JSON = {"model": opts.upstream_model}
    explicit_max = _max_tokens(req)
    max_tokens = explicit_max if explicit_max is not None else opts.default_max_tokens
    body["max_tokens"] = max_tokens
    if system:
        plain = len(system) == 1 and "cache_control" not in system[0]
        body["system"] = system[0]["text"] if plain else system
    body["messages"] = turns
    _sampling(req, body, ctx)

    # Tools, tool_choice and the JSON-mode emulation decide together.
    raw_tools, raw_choice = _legacy_functions(req)
    tools = _convert_tools(raw_tools, ctx) if raw_tools is not None else []
    choice = _tool_choice(raw_choice, "tool_choice", ctx)
    json_tool = _json_tool(req.get("response_format"), ctx)
    # With "required" or a named tool the answer is a tool call: nothing to format.
    free = choice is None or choice["type"] in ("auto", "none")
    if json_tool is not None and (not tools or free):
        # "none" keeps the client tools declared all the same: Anthropic refuses histories
        # holding tool_use blocks when no tools are declared.
        only_json = not tools or (choice is not None and choice["type"] == "none")
        tools.append(json_tool)
        choice = {"type": "tool", "name": JSON_TOOL_NAME} if only_json else {"type": "any"}
    if tools:
        body["tools"] = tools
        parallel = req.get("parallel_tool_calls")
        if parallel is False:
            choice = choice or {"type": "auto"}
            if choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
        if choice is not None:
            body["tool_choice"] = choice
    elif choice is not None and choice["type"] in ("any", "tool"):
        raise _fail("tool_choice requires tools", "tool_choice")

    _thinking(req, body, turns, explicit_max, ctx)

    stream = req.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise _fail("stream must be a boolean", "stream")
        body["stream"] = stream
    user = req.get("user")
    if user is None:
        user = req.get("safety_identifier")
    elif req.get("safety_identifier") is not None:
        ctx.warn("'safety_identifier' is not supported by Anthropic and was ignored")
    if user is not None:
        if not isinstance(user, str):
            raise _fail("user must be a string", "user")
        if user:
            body["metadata"] = {"user_id": user}
    _unsupported_params(req, ctx)
    return Translated(body, ctx.warnings)


def _thinking(
    req: JSON, body: JSON, turns: list[JSON], explicit_max: int | None, ctx: _Ctx
) -> None:
    effort = req.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise _fail(f"unsupported reasoning_effort {effort!r}", "reasoning_effort")
    budget = THINKING_BUDGETS[effort]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        ctx.warn("reasoning_effort was ignored: Anthropic cannot think while a tool is forced")
        return
    if _in_tool_loop(turns):
        ctx.warn("reasoning_effort was ignored: Anthropic cannot resume a tool loop with thinking")
        return
    if explicit_max is None:
        if body["max_tokens"] <= budget:
            body["max_tokens"] += budget
    elif explicit_max <= budget:
        budget = max(_MIN_THINKING_BUDGET, explicit_max // 2)
        if explicit_max <= budget:
            ctx.warn(
                f"reasoning_effort was ignored: max tokens {explicit_max} leave no room to think"
            )
            return
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        del body["temperature"]
        ctx.warn("temperature was ignored: Anthropic requires the default with reasoning_effort")
    top_p = body.get("top_p")
    if top_p is not None and top_p < 0.95:
        del body["top_p"]
        ctx.warn("top_p was ignored: Anthropic requires top_p >= 0.95 with reasoning_effort")
    if "top_k" in body:
        del body["top_k"]
        ctx.warn("top_k was ignored: Anthropic does not allow it with reasoning_effort")


# -- Anthropic response -> OpenAI chat completion --------------------------------------


def usage_from_anthropic(u: object) -> Usage | None:
    """Read an Anthropic ``usage`` object (message, message_start or message_delta)."""
    if not isinstance(u, dict):
        return None
    read = _int(u.get("cache_read_input_tokens"))
    write = _int(u.get("cache_creation_input_tokens"))
    details = u.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=_int(u.get("input_tokens")) + read + write,
        completion_tokens=_int(u.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=thinking,
    )


def _openai_usage(u: Usage) -> JSON:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _finish_reason(stop_reason: object, *, tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not tool_calls:
        return "stop"  # only the JSON-mode tool was called: the answer is content
    if isinstance(stop_reason, str):
        return _STOP_TO_FINISH.get(stop_reason, "stop")
    return "stop"


def messages_to_chat_response(resp: JSON, *, model: str) -> JSON:
    """Anthropic message -> OpenAI ``chat.completion``."""
    if not isinstance(resp, dict):
        raise _fail("Anthropic response must be a JSON object", "body")
    blocks = resp.get("content")
    if not isinstance(blocks, list):
        raise _fail("Anthropic response has no content list", "content")
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[JSON] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            reasoning.append(block["thinking"])
        elif kind == "tool_use":
            input_ = block.get("input")
            arguments = _dumps(input_ if isinstance(input_, dict) else {})
            if block.get("name") == JSON_TOOL_NAME:
                texts.append(arguments)
                continue
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        # Server tool blocks, redacted thinking and the like have no OpenAI form.
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = usage_from_anthropic(resp.get("usage")) or Usage()
    return {
        "id": "chatcmpl-" + _strip_prefix(resp.get("id"), "chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(
                    resp.get("stop_reason"), tool_calls=bool(tool_calls)
                ),
            }
        ],
        "usage": _openai_usage(usage),
    }


class MessagesToChatStream:
    """Anthropic SSE events -> OpenAI ``chat.completion.chunk`` dicts.

    ``usage`` holds the exact usage seen so far (final once ``message_delta`` arrived).
    An ``error`` event raises :class:`AnthropicStreamError`.
    """

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.usage = Usage()
        self.finish_reason: str | None = None
        self._id = "chatcmpl-aigw"
        self._created = int(time.time())
        self._started = False
        self._raw_usage: JSON = {}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_call index
        self._json_blocks: set[int] = set()

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _update_usage(self, u: object) -> None:
        if not isinstance(u, dict):
            return
        # message_delta counts are cumulative: overwrite, keeping message_start's values
        # for the fields a delta omits.
        self._raw_usage.update({k: v for k, v in u.items() if v is not None})
        self.usage = usage_from_anthropic(self._raw_usage) or Usage()

    def _start(self) -> list[JSON]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _tool_head(self, index: int, block: JSON) -> list[JSON]:
        tc_index = len(self._tools)
        self._tools[index] = tc_index
        input_ = block.get("input")
        # Anthropic streams the input through deltas and starts with {}; a non-empty
        # start input (never seen for client tools) must not be lost.
        arguments = _dumps(input_) if isinstance(input_, dict) and input_ else ""
        call = {
            "index": tc_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def feed(self, event: str, data: JSON) -> list[JSON]:
        """One Anthropic SSE event (its name and parsed data) -> zero or more chunks."""
        if not isinstance(data, dict):
            return []
        kind = event if event and event != "message" else str(data.get("type", ""))
        if kind == "error":
            err = data.get("error")
            err = err if isinstance(err, dict) else {}
            raise AnthropicStreamError(
                str(err.get("message") or "upstream stream error"),
                err.get("type") if isinstance(err.get("type"), str) else None,
            )
        if kind == "message_start":
            msg = data.get("message")
            if isinstance(msg, dict):
                if isinstance(msg.get("id"), str):
                    self._id = "chatcmpl-" + msg["id"]
                self._update_usage(msg.get("usage"))
            return self._start()
        out: list[JSON] = []
        if kind == "content_block_start":
            out += self._start()
            index, block = data.get("index"), data.get("content_block")
            if not isinstance(index, int) or not isinstance(block, dict):
                return out
            btype = block.get("type")
            if btype == "text" and block.get("text"):
                out.append(self._chunk({"content": block["text"]}))
            elif btype == "thinking" and block.get("thinking"):
                out.append(self._chunk({"reasoning_content": block["thinking"]}))
            elif btype == "tool_use":
                if block.get("name") == JSON_TOOL_NAME:
                    self._json_blocks.add(index)
                    input_ = block.get("input")
                    if isinstance(input_, dict) and input_:
                        out.append(self._chunk({"content": _dumps(input_)}))
                else:
                    out += self._tool_head(index, block)
        elif kind == "content_block_delta":
            out += self._start()
            index, delta = data.get("index"), data.get("delta")
            if not isinstance(delta, dict):
                return out
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                out.append(self._chunk({"content": delta["text"]}))
            elif dtype == "thinking_delta" and delta.get("thinking"):
                out.append(self._chunk({"reasoning_content": delta["thinking"]}))
            # The index is checked before the set lookups: a malformed one may be unhashable.
            elif (
                dtype == "input_json_delta" and delta.get("partial_json") and isinstance(index, int)
            ):
                partial = delta["partial_json"]
                if index in self._json_blocks:
                    out.append(self._chunk({"content": partial}))
                elif index in self._tools:
                    call = {"index": self._tools[index], "function": {"arguments": partial}}
                    out.append(self._chunk({"tool_calls": [call]}))
        elif kind == "message_delta":
            out += self._start()
            self._update_usage(data.get("usage"))
            delta = data.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop is not None:
                self.finish_reason = _finish_reason(stop, tool_calls=bool(self._tools))
                out.append(self._chunk({}, self.finish_reason))
        return out

    def final_usage_chunk(self) -> JSON:
        """The trailing usage chunk of ``stream_options.include_usage``."""
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [],
            "usage": _openai_usage(self.usage),
        }


# -- Anthropic messages request -> OpenAI chat request ---------------------------------


def _data_url(source: JSON, param: str) -> str:
    media, data = source.get("media_type"), source.get("data")
    if not isinstance(media, str) or not isinstance(data, str) or not data:
        raise _fail("base64 source needs media_type and data", param)
    return f"data:{media};base64,{data}"


def _anthropic_part(block: JSON, param: str) -> JSON | None:
    """An Anthropic user content block (not tool_result) -> an OpenAI content part."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _fail("text block needs a string 'text'", f"{param}.text")
        return {"type": "text", "text": text}
    if kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, dict):
            raise _fail(f"{kind} block needs a source", f"{param}.source")
        stype = source.get("type")
        if stype == "base64":
            url = _data_url(source, f"{param}.source")
            if kind == "image":
                return {"type": "image_url", "image_url": {"url": url}}
            title = block.get("title")
            name = title if isinstance(title, str) and title else "document.pdf"
            return {"type": "file", "file": {"file_data": url, "filename": name}}
        if stype == "url" and kind == "image" and isinstance(source.get("url"), str):
            return {"type": "image_url", "image_url": {"url": source["url"]}}
        if stype == "text" and isinstance(source.get("data"), str):
            return {"type": "text", "text": source["data"]}
        raise _fail(f"unsupported {kind} source type {stype!r}", f"{param}.source.type")
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise _fail(f"unsupported content block type {kind!r}", f"{param}.type")


def _anthropic_blocks(content: object, param: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail("content must be a string or a list of blocks", param)
    for k, block in enumerate(content):
        if not isinstance(block, dict):
            raise _fail("content block must be an object", f"{param}[{k}]")
    return content


def _user_messages(content: object, param: str) -> list[JSON]:
    """One Anthropic user turn -> OpenAI tool messages, then at most one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[JSON] = []
    parts: list[JSON] = []
    tool_images: list[JSON] = []
    for k, block in enumerate(_anthropic_blocks(content, param)):
        p = f"{param}[{k}]"
        if block.get("type") != "tool_result":
            part = _anthropic_part(block, p)
            if part is not None:
                parts.append(part)
            continue
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise _fail("tool_result needs a tool_use_id", f"{p}.tool_use_id")
        texts: list[str] = []
        inner = block.get("content")
        if inner is not None:
            for j, sub in enumerate(_anthropic_blocks(inner, f"{p}.content")):
                part = _anthropic_part(sub, f"{p}.content[{j}]")
                if part is None:
                    continue
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    # OpenAI tool messages are text only: images ride in the next user turn.
                    tool_images.append(part)
        text = "\n".join(texts)
        if block.get("is_error"):
            text = f"Error: {text}" if text else "Error"
        out.append({"role": "tool", "tool_call_id": call_id, "content": text})
    parts = tool_images + parts
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: object, param: str) -> JSON | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[JSON] = []
    for k, block in enumerate(_anthropic_blocks(content, param)):
        p = f"{param}[{k}]"
        kind = block.get("type")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _fail("text block needs a string 'text'", f"{p}.text")
            texts.append(block["text"])
        elif kind == "tool_use":
            call_id, name, input_ = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(call_id, str) or not isinstance(name, str) or not name:
                raise _fail("tool_use block needs an id and a name", p)
            if not isinstance(input_, dict):
                raise _fail("tool_use input must be an object", f"{p}.input")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": _dumps(input_)},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed model internals; an OpenAI upstream cannot use them
        else:
            raise _fail(f"unsupported assistant block type {kind!r}", f"{p}.type")
    if not texts and not calls:
        return None
    msg: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _system_message(system: object) -> JSON | None:
    if system is None or system == "":
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system}
    if not isinstance(system, list):
        raise _fail("system must be a string or a list of text blocks", "system")
    parts: list[JSON] = []
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail("system blocks must be text blocks", f"system[{k}]")
        if not isinstance(block.get("text"), str):
            raise _fail("text block needs a string 'text'", f"system[{k}].text")
        parts.append({"type": "text", "text": block["text"]})
    return {"role": "system", "content": parts} if parts else None


def _openai_tools(tools: object) -> list[JSON]:
    if not isinstance(tools, list):
        raise _fail("tools must be a list", "tools")
    out: list[JSON] = []
    for j, tool in enumerate(tools):
        p = f"tools[{j}]"
        if not isinstance(tool, dict):
            raise _fail("tool must be an object", p)
        if tool.get("type", "custom") != "custom":
            # Server tools (web search, code execution, bash...) run inside Anthropic.
            raise _fail(
                f"tool type {tool.get('type')!r} is only available on Anthropic", f"{p}.type"
            )
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise _fail("tool needs a name", f"{p}.name")
        if not isinstance(schema, dict):
            raise _fail("tool needs an input_schema object", f"{p}.input_schema")
        fn: JSON = {"name": name}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        fn["parameters"] = schema
        out.append({"type": "function", "function": fn})
    return out


def _openai_tool_choice(choice: object) -> tuple[object, bool]:
    """Anthropic tool_choice -> (OpenAI tool_choice, parallel tool use disabled)."""
    if not isinstance(choice, dict):
        raise _fail("tool_choice must be an object", "tool_choice")
    kind = choice.get("type")
    no_parallel = bool(choice.get("disable_parallel_tool_use"))
    if kind == "auto":
        return "auto", no_parallel
    if kind == "any":
        return "required", no_parallel
    if kind == "none":
        return "none", False
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, no_parallel
    raise _fail(f"unsupported tool_choice {kind!r}", "tool_choice")


def _response_format(req: JSON) -> JSON | None:
    """Anthropic structured outputs (``output_config.format``/``output_format``)."""
    config = req.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = req.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _fail("only json_schema output formats are supported", "output_config.format")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _fail("json_schema output format needs a schema", "output_config.format.schema")
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def messages_to_chat_request(req: JSON) -> JSON:
    """Anthropic Messages request (from a client) -> OpenAI chat request (the hub).

    ``thinking``, ``output_config.effort``, ``top_k``, ``service_tier`` and cache hints
    are dropped; server tools, MCP servers and containers raise :class:`TranslationError`.
    """
    if not isinstance(req, dict):
        raise _fail("request body must be a JSON object", "body")
    for key in ("mcp_servers", "container"):
        if req.get(key):
            raise _fail(f"'{key}' is only available on Anthropic", key)
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages must be a non-empty list", "messages")
    out_msgs: list[JSON] = []
    system = _system_message(req.get("system"))
    if system is not None:
        out_msgs.append(system)
    for i, msg in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _fail("message must be an object", p)
        role = msg.get("role")
        if role == "user":
            out_msgs.extend(_user_messages(msg.get("content"), f"{p}.content"))
        elif role == "assistant":
            assistant = _assistant_message(msg.get("content"), f"{p}.content")
            if assistant is not None:
                out_msgs.append(assistant)
        else:
            raise _fail(f"unsupported role {role!r}", f"{p}.role")
    out: JSON = {"model": req.get("model"), "messages": out_msgs}
    max_tokens = req.get("max_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _fail("max_tokens must be a positive integer", "max_tokens")
        out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = req.get(key)
        if value is not None:
            if not _is_number(value):
                raise _fail(f"{key} must be a number", key)
            out[key] = value
    stops = req.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("stop_sequences must be a list of strings", "stop_sequences")
        out["stop"] = stops
    if req.get("tools"):
        out["tools"] = _openai_tools(req["tools"])
    if req.get("tool_choice") is not None:
        choice, no_parallel = _openai_tool_choice(req["tool_choice"])
        if "tools" in out:
            out["tool_choice"] = choice
            if no_parallel:
                out["parallel_tool_calls"] = False
    response_format = _response_format(req)
    if response_format is not None:
        out["response_format"] = response_format
    metadata = req.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    stream = req.get("stream")
    if stream is not None:
        out["stream"] = bool(stream)
        if stream:
            # The Anthropic message_delta needs the final usage.
            out["stream_options"] = {"include_usage": True}
    return out


# -- OpenAI chat completion -> Anthropic response --------------------------------------


def _anthropic_usage(u: Usage) -> JSON:
    return {
        "input_tokens": max(0, u.prompt_tokens - u.cached_tokens - u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    }


def _input_from_arguments(arguments: object) -> JSON:
    """Model-written arguments -> tool_use input; Anthropic needs an object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    # Keep malformed model output visible rather than silently losing it.
    return value if isinstance(value, dict) else {"arguments": arguments}


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def chat_to_messages_response(resp: JSON, *, model: str) -> JSON:
    """OpenAI ``chat.completion`` -> Anthropic message."""
    if not isinstance(resp, dict):
        raise _fail("chat completion must be a JSON object", "body")
    choices = resp.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        raise _fail("chat completion has no choices", "choices")
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    blocks: list[JSON] = []
    text = _message_text(message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        text = text or refusal
    if text:
        blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_aigw_{k}",
                "name": fn.get("name") or "",
                "input": _input_from_arguments(fn.get("arguments")),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_aigw_legacy",
                "name": legacy.get("name") or "",
                "input": _input_from_arguments(legacy.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    stop_reason = _FINISH_TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if isinstance(refusal, str) and refusal:
        stop_reason = "refusal"
    usage = usage_from_openai(resp.get("usage")) or Usage()
    return {
        "id": "msg_" + _strip_prefix(resp.get("id"), "chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage),
    }


class ChatToMessagesStream:
    """OpenAI ``chat.completion.chunk`` dicts -> Anthropic SSE (event, data) pairs.

    ``input_tokens`` is the estimate announced in ``message_start``; the real counts go
    out in ``message_delta`` once the upstream usage chunk arrives (or at :meth:`finish`).
    """

    def __init__(self, *, model: str, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.usage: Usage | None = None
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: int | None = None  # index of the open content block
        self._open_text = False
        self._tools: dict[int, int] = {}  # OpenAI tool_call index -> block index
        self._stop_reason: str | None = None

    def _message_start(self, chunk_id: object) -> tuple[str, JSON]:
        self._started = True
        message: JSON = {
            "id": "msg_" + _strip_prefix(chunk_id, "chatcmpl-"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        return ("message_start", {"type": "message_start", "message": message})

    def _close(self) -> list[tuple[str, JSON]]:
        if self._open is None:
            return []
        index, self._open, self._open_text = self._open, None, False
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, block: JSON, *, text: bool) -> list[tuple[str, JSON]]:
        out = self._close()
        index = self._next_index
        self._next_index += 1
        self._open, self._open_text = index, text
        event = {"type": "content_block_start", "index": index, "content_block": block}
        return [*out, ("content_block_start", event)]

    def _text(self, text: str) -> list[tuple[str, JSON]]:
        out = [] if self._open_text else self._open_block({"type": "text", "text": ""}, text=True)
        delta = {"type": "text_delta", "text": text}
        out.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": self._open, "delta": delta},
            )
        )
        return out

    def _tool_calls(self, calls: Iterable[object]) -> list[tuple[str, JSON]]:
        out: list[tuple[str, JSON]] = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            key = call.get("index")
            if not isinstance(key, int):
                # Some OpenAI-compatible servers omit the index: a new id is a new call.
                key = (
                    len(self._tools) if call.get("id") or not self._tools else len(self._tools) - 1
                )
            fn = call.get("function")
            fn = fn if isinstance(fn, dict) else {}
            if key not in self._tools:
                block: JSON = {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_aigw_{key}",
                    "name": fn.get("name") or "",
                    "input": {},
                }
                out += self._open_block(block, text=False)
                self._tools[key] = self._next_index - 1
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                delta = {"type": "input_json_delta", "partial_json": arguments}
                event = {"type": "content_block_delta", "index": self._tools[key], "delta": delta}
                out.append(("content_block_delta", event))
        return out

    def _end(self) -> list[tuple[str, JSON]]:
        self._ended = True
        usage: JSON = {"output_tokens": 0}
        if self.usage is not None:
            usage = _anthropic_usage(self.usage)
        delta = {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None}
        return [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def feed(self, chunk: JSON) -> list[tuple[str, JSON]]:
        """One OpenAI chunk -> Anthropic events. A usage chunk carries the final usage."""
        if self._ended or not isinstance(chunk, dict):
            return []
        out: list[tuple[str, JSON]] = []
        if not self._started:
            out.append(self._message_start(chunk.get("id")))
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic has one choice
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out += self._text(text)
                    if key == "refusal":
                        self._stop_reason = "refusal"
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                out += self._tool_calls(calls)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                out += self._close()
                if self._stop_reason != "refusal":
                    self._stop_reason = _FINISH_TO_STOP.get(finish, "end_turn")
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        if self._stop_reason is not None and self.usage is not None:
            out += self._end()
        return out

    def finish(self) -> list[tuple[str, JSON]]:
        """Close the message after the upstream ``[DONE]`` (or a usage-less end)."""
        if self._ended:
            return []
        out: list[tuple[str, JSON]] = []
        if not self._started:
            out.append(self._message_start(None))
        out += self._close()
        return out + self._end()


# -- errors ---------------------------------------------------------------------------


def parse_anthropic_error(body: bytes) -> tuple[str, str | None]:
    """(message, error type) from an Anthropic error body; never raises."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            etype = err.get("type")
            return (
                message if isinstance(message, str) and message else "unknown upstream error",
                etype if isinstance(etype, str) else None,
            )
        if isinstance(err, str) and err:
            return err, None
        if isinstance(data.get("message"), str):
            return data["message"], None
    text = body.decode("utf-8", "replace").strip() if body else ""
    return (text[:500] or "empty error body from upstream"), None
