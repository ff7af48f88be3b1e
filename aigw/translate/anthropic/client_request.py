"""Anthropic Messages request from a client -> OpenAI chat completions request (the hub)."""

from __future__ import annotations

from aigw.translate.anthropic.shared import _dumps, _fail, _is_number
from aigw.translate.common import JSON


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
