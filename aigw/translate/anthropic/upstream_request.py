"""OpenAI chat completions request (the hub) -> Anthropic ``/v1/messages`` body.

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
* **JSON mode** is emulated with the synthetic tool :data:`JSON_TOOL_NAME` (see the
  package docstring).
* **reasoning_effort** maps to extended thinking ``{"type": "enabled",
  "budget_tokens": N}`` with N = 1024 for minimal/low, 4096 for medium, 16384 for high,
  32768 for xhigh (``none`` means no thinking); a numeric budget in the hub's
  ``thinking`` extension (a Gemini client's ``thinkingBudget``) is sent as it is,
  raised to Anthropic's 1024 minimum with a warning. ``max_tokens`` must exceed the budget:
  without an explicit client limit the default limit is raised by the budget; with an
  explicit limit the budget shrinks to fit (never below Anthropic's 1024 minimum).
  Thinking is dropped with a warning when it cannot work: the limit is too small,
  tool_choice forces a tool (Anthropic forbids both), or the conversation is in the
  middle of a tool loop (Anthropic would require the earlier assistant turn to start
  with a signed thinking block, which an OpenAI history cannot carry). While thinking
  is on, ``temperature`` other than 1 and ``top_p`` below 0.95 are dropped with a
  warning, as Anthropic rejects them.
* **Tool-call ids** go through :func:`~aigw.translate.tool_ids.to_anthropic`: ids
  outside Anthropic's ``^[a-zA-Z0-9_-]+$`` (``functions.get_weather:0``) are encoded
  reversibly. An id that an earlier assistant turn already used (histories from servers
  that restart ``call_0`` every round) is renamed in that turn and in the tool results
  answering it, since Anthropic rejects repeated ``tool_use`` ids.
* **Temperature** is clamped to Anthropic's 0..1 range with a warning.
* **Unsupported parameters.** Benign ones are dropped with a warning; meaning-changing
  ones (``n > 1``, logprobs, audio output, file ids, web search...) raise
  :class:`TranslationError` under ``opts.strict`` and are dropped with a warning
  otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from aigw.translate.anthropic.shared import JSON_TOOL_NAME, _fail, _is_number
from aigw.translate.common import JSON, Translated, TranslateOptions
from aigw.translate.tool_ids import to_anthropic

THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
}


_MIN_THINKING_BUDGET = 1024


_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


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
        "thinking",
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


def _unique_id(call_id: str, where: str, sent: dict[str, str], used: set[str]) -> str:
    """The Anthropic id of a client tool call: :func:`to_anthropic` of it, or, when an
    earlier call already has that id, of it suffixed with its position (``where``)."""
    out = to_anthropic(call_id)
    if out in used:
        out = to_anthropic(f"{call_id}#{where}")
    used.add(out)
    sent[call_id] = out
    return out


def _convert_messages(messages: object, ctx: _Ctx) -> tuple[list[JSON], list[JSON]]:
    """OpenAI messages -> (Anthropic system blocks, Anthropic turns)."""
    if not isinstance(messages, list) or not messages:
        raise _fail("messages must be a non-empty list", "messages")
    system: list[JSON] = []
    turns = _Turns()
    legacy_calls: list[tuple[str, str]] = []  # (name, synthesized id) of function_call turns
    sent_ids: dict[str, str] = {}  # client tool-call id -> Anthropic id, latest call wins
    used_ids: set[str] = set()  # Anthropic tool_use ids in the history so far
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
            for j, block in enumerate(blocks):
                if block["type"] == "tool_use":
                    block["id"] = _unique_id(block["id"], f"{i}.{j}", sent_ids, used_ids)
            turns.add("assistant", blocks)
        elif role == "tool":
            tool_call_id = msg.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise _fail("tool message needs a 'tool_call_id'", f"{p}.tool_call_id")
            tool_use_id = sent_ids.get(tool_call_id) or to_anthropic(tool_call_id)
            result: JSON = {"type": "tool_result", "tool_use_id": tool_use_id}
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
            result = {"type": "tool_result", "tool_use_id": sent_ids.get(match[1], match[1])}
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


def _hub_budget(req: JSON) -> int | None:
    """The numeric budget of the hub's ``thinking`` extension (a Gemini client's
    thinkingBudget, LiteLLM's dialect), or None."""
    thinking = req.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise _fail("thinking must be an object", "thinking")
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or budget is None:
        return None
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        raise _fail("thinking.budget_tokens must be a non-negative integer", "thinking")
    return budget


def _thinking(
    req: JSON, body: JSON, turns: list[JSON], explicit_max: int | None, ctx: _Ctx
) -> None:
    effort = req.get("reasoning_effort")
    asked = _hub_budget(req)
    if asked == 0 or (asked is None and (effort is None or effort == "none")):
        return
    if asked is None:
        if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
            raise _fail(f"unsupported reasoning_effort {effort!r}", "reasoning_effort")
        budget = THINKING_BUDGETS[effort]
    else:
        budget = max(asked, _MIN_THINKING_BUDGET)
        if budget != asked:
            ctx.warn(f"thinking budget {asked} was raised to {budget}, Anthropic's minimum")
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
        wanted = budget
        budget = max(_MIN_THINKING_BUDGET, explicit_max // 2)
        if explicit_max <= budget:
            ctx.warn(
                f"reasoning_effort was ignored: max tokens {explicit_max} leave no room to think"
            )
            return
        if asked is not None:
            ctx.warn(
                f"thinking budget {wanted} was lowered to {budget}: Anthropic needs it "
                f"below max tokens {explicit_max}"
            )
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
