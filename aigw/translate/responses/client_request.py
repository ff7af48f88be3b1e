"""OpenAI Responses request from a client -> OpenAI chat completions request (the hub).

The gateway stores nothing, so everything that refers to a stored object
(``previous_response_id``, ``conversation``, ``item_reference`` items, ``file_id``
inputs, ``prompt`` templates, ``background``) is a clear 400. ``store`` is ignored
with a warning. Built-in tools (web search, file search, code interpreter...) and
namespaced tool groups run inside OpenAI: they are dropped with a warning rather
than refused, because agents such as Codex CLI send them on every call whether the
model needs them or not; a ``tool_choice`` that forces one of them is a 400.
Reasoning items in the input are dropped: they are signed or encrypted for the model
that wrote them and no other provider can read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from aigw.translate.common import JSON, TranslationError, copy_limits

# Tool types only OpenAI can serve: built-in tools that run on its side, and custom
# (grammar-constrained) and namespaced tools, which have no chat-completions form.
BUILTIN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "computer_use",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "custom",
        "namespace",
        "tool_search",
    }
)

# Fields this translator reads, or ignores on purpose (no effect through the gateway,
# no meaning lost); any other field is named in a warning.
_KNOWN = frozenset(
    {
        "model",
        "stream",
        "input",
        "instructions",
        "include",  # asks for extra output fields (encrypted reasoning...) we never have
        "prompt_cache_key",  # providers other than OpenAI cache on their own
        "prompt_cache_retention",
        "client_metadata",  # Codex CLI's per-turn telemetry
        "truncation",
        "stream_options",
        "safety_identifier",
        "store",
        "metadata",
        "service_tier",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "max_tool_calls",
        "top_logprobs",
        "previous_response_id",
        "conversation",
        "background",
        "prompt",
    }
)


def _fail(message: str, param: str) -> TranslationError:
    return TranslationError(message, param=param)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class _Out:
    messages: list[JSON] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def assistant(self) -> JSON:
        """The assistant message being built (function calls join the one before)."""
        last = self.messages[-1] if self.messages else None
        if last is None or last.get("role") != "assistant" or last.get("_closed"):
            last = {"role": "assistant", "content": None}
            self.messages.append(last)
        return last


def _text_of(part: JSON, param: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _fail("text part needs a string 'text'", f"{param}.text")
    return text


def _image(part: JSON, param: str) -> JSON:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        if part.get("file_id") is not None:
            raise _fail(
                "input_image by file_id needs OpenAI's file storage; send image_url "
                "(an https or data: URL) instead",
                f"{param}.file_id",
            )
        raise _fail("input_image needs an image_url", f"{param}.image_url")
    image: JSON = {"url": url}
    detail = part.get("detail")
    if isinstance(detail, str) and detail in ("low", "high", "auto"):
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file(part: JSON, param: str) -> JSON:
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        raise _fail(
            "input_file needs inline file_data (file_id and file_url need OpenAI's storage)",
            f"{param}.file_data",
        )
    name = part.get("filename")
    return {
        "type": "file",
        "file": {"file_data": data, "filename": name if isinstance(name, str) else "file.pdf"},
    }


def _parts(content: object, param: str) -> list[JSON]:
    """Responses content parts -> chat content parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail("content must be a string or an array of content parts", param)
    out: list[JSON] = []
    for k, part in enumerate(content):
        p = f"{param}[{k}]"
        if not isinstance(part, dict):
            raise _fail("content part must be an object", p)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            out.append({"type": "text", "text": _text_of(part, p)})
        elif kind == "refusal":
            refusal = part.get("refusal")
            if not isinstance(refusal, str):
                raise _fail("refusal part needs a string 'refusal'", f"{p}.refusal")
            out.append({"type": "text", "text": refusal})
        elif kind == "input_image":
            out.append(_image(part, p))
        elif kind == "input_file":
            out.append(_file(part, p))
        else:
            raise _fail(f"unsupported content part type {kind!r}", f"{p}.type")
    return out


def _joined(parts: list[JSON]) -> str:
    return "".join(p["text"] for p in parts if p.get("type") == "text")


def _message(item: JSON, param: str, out: _Out) -> None:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _fail(f"unsupported role {role!r}", f"{param}.role")
    parts = _parts(item.get("content"), f"{param}.content")
    if role == "assistant":
        text = _joined(parts)
        if text:
            msg = out.assistant()
            if msg.get("tool_calls"):  # text after calls: a new turn
                msg["_closed"] = True
                msg = out.assistant()
            msg["content"] = (msg.get("content") or "") + text
        return
    if role in ("system", "developer"):
        # Every target's system prompt is text; the hub's translators place it.
        out.messages.append({"role": "system", "content": _joined(parts)})
        return
    if all(p["type"] == "text" for p in parts):
        out.messages.append({"role": "user", "content": _joined(parts)})
    else:
        out.messages.append({"role": "user", "content": parts})


def _function_call(item: JSON, param: str, out: _Out) -> None:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not call_id:
        raise _fail("function_call needs a call_id", f"{param}.call_id")
    if not isinstance(name, str) or not name:
        raise _fail("function_call needs a name", f"{param}.name")
    if arguments is None:
        arguments = "{}"
    if not isinstance(arguments, str):
        raise _fail("function_call arguments must be a JSON string", f"{param}.arguments")
    msg = out.assistant()
    msg.setdefault("tool_calls", []).append(
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    )


def _function_output(item: JSON, param: str, out: _Out) -> None:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail("function_call_output needs a call_id", f"{param}.call_id")
    output = item.get("output")
    images: list[JSON] = []
    if isinstance(output, str):
        text = output
    elif isinstance(output, list):
        parts = _parts(output, f"{param}.output")
        text = _joined(parts)
        # Chat tool messages are text only: images ride in a user message after them.
        images = [p for p in parts if p["type"] != "text"]
    else:
        raise _fail("function_call_output output must be a string or an array", f"{param}.output")
    out.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
    if images:
        out.messages.append({"role": "user", "content": images})


def _input(value: object, out: _Out) -> None:
    if isinstance(value, str):
        out.messages.append({"role": "user", "content": value})
        return
    if not isinstance(value, list):
        raise _fail("input must be a string or an array of items", "input")
    for i, item in enumerate(value):
        p = f"input[{i}]"
        if not isinstance(item, dict):
            raise _fail("input item must be an object", p)
        kind = item.get("type", "message")
        if kind == "message":
            _message(item, p, out)
        elif kind == "function_call":
            _function_call(item, p, out)
        elif kind == "function_call_output":
            _function_output(item, p, out)
        elif kind == "reasoning":
            continue  # encrypted or signed for the model that wrote it: unusable elsewhere
        elif kind == "item_reference":
            raise _fail(
                "item_reference needs stored responses; the gateway stores none: "
                "send the items themselves",
                f"{p}.type",
            )
        else:
            raise _fail(f"input item type {kind!r} is only available on OpenAI", f"{p}.type")
    for msg in out.messages:
        msg.pop("_closed", None)


def _tools(tools: object, out: _Out) -> tuple[list[JSON], set[str]]:
    """Function tools -> chat tools; built-in ones dropped. Returns the kept names too."""
    if not isinstance(tools, list):
        raise _fail("tools must be an array", "tools")
    kept: list[JSON] = []
    names: set[str] = set()
    dropped: list[str] = []
    for j, tool in enumerate(tools):
        p = f"tools[{j}]"
        if not isinstance(tool, dict):
            raise _fail("tool must be an object", p)
        kind = tool.get("type")
        if kind != "function":
            if not isinstance(kind, str) or kind not in BUILTIN_TOOLS:
                raise _fail(f"unsupported tool type {kind!r}", f"{p}.type")
            label = tool.get("name") if kind in ("custom", "namespace") else kind
            dropped.append(str(label))
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _fail("function tool needs a name", f"{p}.name")
        fn: JSON = {"name": name}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _fail("function tool parameters must be an object", f"{p}.parameters")
        fn["parameters"] = params if params is not None else {"type": "object", "properties": {}}
        if tool.get("strict") is True:
            fn["strict"] = True
        kept.append({"type": "function", "function": fn})
        names.add(name)
    if dropped:
        out.warn(
            "tools only OpenAI can serve were ignored: " + ", ".join(dict.fromkeys(dropped).keys())
        )
    return kept, names


def _tool_choice(choice: object, names: set[str], out: _Out) -> object:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise _fail(f"unsupported tool_choice {choice!r}", "tool_choice")
        return choice
    if not isinstance(choice, dict):
        raise _fail("tool_choice must be a string or an object", "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        if not isinstance(name, str) or name not in names:
            raise _fail(f"tool_choice names no function tool {name!r}", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        out.warn("tool_choice allowed_tools was applied as its mode: every tool stays offered")
        return "required" if mode == "required" else "auto"
    raise _fail(f"tool_choice {kind!r} is only available on OpenAI", "tool_choice.type")


def _response_format(text: object) -> JSON | None:
    if not isinstance(text, dict):
        raise _fail("text must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _fail("text.format must be an object", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema, name = fmt.get("schema"), fmt.get("name")
        if not isinstance(schema, dict):
            raise _fail("json_schema format needs a schema object", "text.format.schema")
        spec: JSON = {"name": name if isinstance(name, str) and name else "response"}
        spec["schema"] = schema
        if isinstance(fmt.get("description"), str):
            spec["description"] = fmt["description"]
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": spec}
    raise _fail(f"unsupported text.format type {kind!r}", "text.format.type")


def _refuse_stored(req: JSON) -> None:
    for key, what in (
        ("previous_response_id", "continuing a stored response"),
        ("conversation", "stored conversations"),
        ("prompt", "stored prompt templates"),
    ):
        if req.get(key) is not None:
            raise _fail(
                f"'{key}' ({what}) needs OpenAI's storage; the gateway stores no responses "
                "for other providers: send the whole conversation in 'input'",
                key,
            )
    if req.get("background"):
        raise _fail("background responses need OpenAI's storage", "background")


def responses_to_chat_request(req: JSON) -> tuple[JSON, list[str]]:
    """Responses API request (from a client) -> (OpenAI chat request, warnings)."""
    if not isinstance(req, dict):
        raise _fail("request body must be a JSON object", "body")
    _refuse_stored(req)
    out = _Out()
    instructions = req.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, (str, list)):
            raise _fail("instructions must be a string or an array of items", "instructions")
        if isinstance(instructions, str):
            if instructions:
                out.messages.append({"role": "system", "content": instructions})
        else:
            _input(instructions, out)
    if req.get("input") is None:
        raise _fail("input is required", "input")
    _input(req["input"], out)
    if not any(m["role"] != "system" for m in out.messages):
        raise _fail("input has no user, assistant or tool message", "input")
    hub: JSON = {"model": req.get("model"), "messages": out.messages}
    copy_limits(req, hub, "max_output_tokens")
    names: set[str] = set()
    if req.get("tools"):
        tools, names = _tools(req["tools"], out)
        if tools:
            hub["tools"] = tools
    choice = req.get("tool_choice")
    if choice is not None and "tools" in hub:
        hub["tool_choice"] = _tool_choice(choice, names, out)
    elif isinstance(choice, dict) or choice == "required":
        # Forcing a tool that was dropped (or none offered) cannot be honoured.
        raise _fail("tool_choice forces a tool, but no function tool was offered", "tool_choice")
    parallel = req.get("parallel_tool_calls")
    if isinstance(parallel, bool) and "tools" in hub and not parallel:
        hub["parallel_tool_calls"] = False
    if req.get("text") is not None:
        fmt = _response_format(req["text"])
        if fmt is not None:
            hub["response_format"] = fmt
        if req["text"].get("verbosity") not in (None, "medium"):
            out.warn("text.verbosity was ignored")
    reasoning = req.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _fail("reasoning must be an object", "reasoning")
        effort = reasoning.get("effort")
        if effort is not None and effort != "none":
            if not isinstance(effort, str):
                raise _fail("reasoning.effort must be a string", "reasoning.effort")
            hub["reasoning_effort"] = effort
    user = req.get("user") if req.get("user") is not None else req.get("safety_identifier")
    if isinstance(user, str) and user:
        hub["user"] = user
    if req.get("store") is True:
        out.warn("store was ignored: the gateway keeps no responses for this provider")
    if req.get("metadata"):
        out.warn("metadata was ignored: the gateway keeps no responses for this provider")
    if req.get("top_logprobs"):
        out.warn("top_logprobs was ignored")
    if req.get("max_tool_calls") is not None:
        out.warn("max_tool_calls was ignored")
    for key in req:
        if key not in _KNOWN:
            out.warn(f"unknown parameter '{key}' was ignored")
    if req.get("stream"):
        hub["stream"] = True
        hub["stream_options"] = {"include_usage": True}
    return hub, out.warnings
