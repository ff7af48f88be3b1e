"""Anthropic Messages request from a client -> OpenAI chat completions request (the hub).

Design choices
--------------
* **Every field the Messages API accepts is read.** A field is translated, dropped
  silently when losing it changes nothing on another provider (``cache_control``, which
  OpenAI and Gemini replace with their own automatic caching; the ``clear_thinking``
  context edit, as thinking blocks never leave for another provider; ``fallback``
  markers), or dropped with a warning (account, billing and speed controls). A loss
  that changes the answer (server tools, MCP servers, a container, a compaction
  request, a server-held thread, an unknown field) is an error under ``strict`` and a
  warning otherwise, like the other translators' meaning-changing losses. A
  ``compaction`` block in the history becomes its summary text.
* **Mid-conversation system entries** (``role: "system"`` inside ``messages``, the
  ``mid-conversation-system`` beta Claude Code sends to non-Claude model names) become
  hub system messages at the same position; the top-level ``system`` comes first.
* **Thinking.** ``thinking`` and ``output_config.effort`` become ``reasoning_effort``
  (effort ``max`` is OpenAI's ``xhigh``; a budget picks low/medium/high). The thinking
  object itself also travels as the hub extension ``thinking`` (``{"type": "enabled",
  "budget_tokens": N}``, as LiteLLM's OpenAI dialect spells it, or ``{"type":
  "adaptive"}``), so a target that takes a token budget (Gemini's ``thinkingBudget``)
  gets the number rather than a bucket, and one that can show its thoughts is asked to.
  Thinking blocks of earlier turns are signed Anthropic internals no other provider
  can read; they are dropped.
* **metadata.user_id** becomes the hub's ``user``; an id longer than OpenAI's 64
  characters (Claude Code sends a JSON object) is replaced by its SHA-256, which stays
  stable per user.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aigw.translate.anthropic.shared import _dumps, _fail
from aigw.translate.common import JSON, Translated, copy_limits, effort_for_budget


@dataclass(slots=True)
class _Ctx:
    """Per-request state: strictness and the warnings collected on the way."""

    strict: bool = True
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def lossy(self, param: str, message: str) -> None:
        """A loss that changes the answer: an error when strict, else a warning."""
        if self.strict:
            raise _fail(message, param)
        self.warn(f"{message}; '{param}' was ignored")


def _data_url(source: JSON, param: str) -> str:
    media, data = source.get("media_type"), source.get("data")
    if not isinstance(media, str) or not isinstance(data, str) or not data:
        raise _fail("base64 source needs media_type and data", param)
    return f"data:{media};base64,{data}"


def _anthropic_part(block: JSON, param: str, ctx: _Ctx) -> JSON | None:
    """An Anthropic user content block (not tool_result) -> an OpenAI content part."""
    kind = block.get("type")
    if kind == "search_result":
        return _search_result(block, param)
    if kind == "compaction":
        return _compaction_text(block, param)
    if kind == "fallback":
        return None  # a boundary marker, "not rendered into the prompt"
    if isinstance(kind, str) and kind in _SERVER_BLOCKS:
        ctx.lossy(param, f"content block type {kind!r} is only available on Anthropic")
        return None
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


# Blocks of tools that run inside Anthropic (web search, code execution, MCP...).
_SERVER_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "mcp_tool_listing",
        "container_upload",
        "advisor_tool_result",
        "tool_addition",
        "tool_removal",
    }
)


def _compaction_text(block: JSON, param: str) -> JSON | None:
    """A ``compaction`` block (Anthropic's summary of the turns it replaces) -> its text.

    ``None`` content is a failed compaction, a no-op for Anthropic too."""
    content = block.get("content")
    if content is None:
        return None
    if not isinstance(content, str):
        raise _fail("compaction content must be a string", f"{param}.content")
    return {"type": "text", "text": content}


def _search_result(block: JSON, param: str) -> JSON:
    """A ``search_result`` block (RAG input with a source) -> text the model can read."""
    inner = block.get("content")
    if not isinstance(inner, list):
        raise _fail("search_result needs a content list", f"{param}.content")
    texts = [b["text"] for b in inner if isinstance(b, dict) and isinstance(b.get("text"), str)]
    head = " ".join(str(block.get(k)) for k in ("title", "source") if isinstance(block.get(k), str))
    return {"type": "text", "text": "\n".join([head, *texts] if head else texts)}


def _anthropic_blocks(content: object, param: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail("content must be a string or a list of blocks", param)
    for k, block in enumerate(content):
        if not isinstance(block, dict):
            raise _fail("content block must be an object", f"{param}[{k}]")
    return content


def _user_messages(content: object, param: str, ctx: _Ctx) -> list[JSON]:
    """One Anthropic user turn -> OpenAI tool messages, then at most one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[JSON] = []
    parts: list[JSON] = []
    tool_images: list[JSON] = []
    for k, block in enumerate(_anthropic_blocks(content, param)):
        p = f"{param}[{k}]"
        if block.get("type") != "tool_result":
            part = _anthropic_part(block, p, ctx)
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
                part = _anthropic_part(sub, f"{p}.content[{j}]", ctx)
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


def _assistant_message(content: object, param: str, ctx: _Ctx) -> JSON | None:
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
        elif kind in ("thinking", "redacted_thinking", "fallback"):
            continue  # signed model internals and markers; another provider cannot use them
        elif kind == "compaction":
            summary = _compaction_text(block, p)
            if summary is not None:
                texts.append(summary["text"])
        elif isinstance(kind, str) and kind in _SERVER_BLOCKS:
            ctx.lossy(p, f"content block type {kind!r} is only available on Anthropic")
        else:
            raise _fail(f"unsupported assistant block type {kind!r}", f"{p}.type")
    if not texts and not calls:
        return None
    msg: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _system_message(system: object, param: str = "system") -> JSON | None:
    """Top-level ``system`` or a mid-conversation system entry's content -> a hub
    system message. ``cache_control`` is dropped: OpenAI and Gemini cache on their own."""
    if system is None or system == "":
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system}
    if not isinstance(system, list):
        raise _fail("system must be a string or a list of text blocks", param)
    parts: list[JSON] = []
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail("system blocks must be text blocks", f"{param}[{k}]")
        if not isinstance(block.get("text"), str):
            raise _fail("text block needs a string 'text'", f"{param}[{k}].text")
        parts.append({"type": "text", "text": block["text"]})
    return {"role": "system", "content": parts} if parts else None


def _openai_tools(tools: object, ctx: _Ctx) -> list[JSON]:
    if not isinstance(tools, list):
        raise _fail("tools must be a list", "tools")
    out: list[JSON] = []
    for j, tool in enumerate(tools):
        p = f"tools[{j}]"
        if not isinstance(tool, dict):
            raise _fail("tool must be an object", p)
        if tool.get("type") not in (None, "custom"):
            # Server tools (web search, code execution, bash...) run inside Anthropic.
            ctx.lossy(f"{p}.type", f"tool type {tool.get('type')!r} is only available on Anthropic")
            continue
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


# Anthropic's account, billing and service controls: no other provider has them, and
# dropping them does not change the answer.
_ANTHROPIC_ONLY = (
    "top_k",
    "service_tier",
    "inference_geo",
    "speed",
    "diagnostics",
    "user_profile_id",
    "workspace_id",
    "billing_policy",
    "fallbacks",
    "fallback_credit_token",
)


# Top-level fields this translator reads, translates or drops on purpose; anything
# else is a field newer than this gateway, reported (or refused when strict).
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "output_config",
        "output_format",
        "context_management",
        "mcp_servers",
        "container",
        "cache_control",
        "compaction",
        "thread",
        *_ANTHROPIC_ONLY,
    }
)


# Anthropic effort levels -> OpenAI reasoning_effort (``max`` has no OpenAI twin).
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}


def _effort(req: JSON, ctx: _Ctx) -> str | None:
    config = req.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise _fail("output_config must be an object", "output_config")
    effort = config.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise _fail("output_config.effort must be a string", "output_config.effort")
    if effort not in _EFFORTS:
        ctx.warn(f"output_config.effort {effort[:20]!r} is unknown to the gateway and was ignored")
        return None
    return _EFFORTS[effort]


def _thinking(req: JSON, out: JSON, ctx: _Ctx) -> None:
    """``thinking`` and ``output_config.effort`` -> ``reasoning_effort`` (+ the hub's
    ``thinking`` extension carrying a numeric budget)."""
    effort = _effort(req, ctx)
    thinking = req.get("thinking")
    hub: JSON | None = None
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise _fail("thinking must be an object", "thinking")
        kind = thinking.get("type")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
                raise _fail("thinking.budget_tokens must be a positive integer", "thinking")
            hub = {"type": "enabled", "budget_tokens": budget}
            effort = effort or effort_for_budget(budget)
        elif kind == "adaptive":
            hub = {"type": "adaptive"}
        elif kind != "disabled":
            ctx.warn(f"thinking type {str(kind)[:20]!r} is unknown to the gateway and was ignored")
        if hub is not None and thinking.get("display") == "omitted":
            hub["display"] = "omitted"
    if effort is not None:
        out["reasoning_effort"] = effort
    if hub is not None:
        out["thinking"] = hub


def _context_management(req: JSON, ctx: _Ctx) -> None:
    cm = req.get("context_management")
    if cm is None:
        return
    edits = cm.get("edits") if isinstance(cm, dict) else None
    if not isinstance(edits, list):
        raise _fail("context_management needs an edits list", "context_management")
    for edit in edits:
        kind = edit.get("type") if isinstance(edit, dict) else None
        # Clearing thinking has nothing to act on: no thinking block leaves Anthropic.
        if not (isinstance(kind, str) and kind.startswith("clear_thinking")):
            ctx.warn(
                "context_management edits run only on Anthropic and were ignored; "
                "the target sees the whole conversation"
            )
            return


def _user_id(metadata: object) -> str | None:
    if not isinstance(metadata, dict) or not isinstance(metadata.get("user_id"), str):
        return None
    user_id: str = metadata["user_id"]
    if not user_id:
        return None
    # OpenAI refuses a user longer than 64 characters; the digest stays one per user.
    return user_id if len(user_id) <= 64 else hashlib.sha256(user_id.encode()).hexdigest()


def messages_to_chat_request(
    req: JSON, *, strict: bool = True, refuse_unknown: bool = False
) -> Translated:
    """Anthropic Messages request (from a client) -> OpenAI chat request (the hub).

    ``strict``: a loss that changes the answer (server tools, MCP servers, containers)
    raises :class:`TranslationError`; otherwise it is dropped with a warning, as benign
    losses always are. A field newer than this gateway is reported with a warning (a
    field the real API accepts is never refused), unless ``refuse_unknown``.
    """
    if not isinstance(req, dict):
        raise _fail("request body must be a JSON object", "body")
    ctx = _Ctx(strict)
    for key in ("mcp_servers", "container"):
        if req.get(key):
            ctx.lossy(key, f"'{key}' is only available on Anthropic")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages must be a non-empty list", "messages")
    out_msgs: list[JSON] = []
    system = _system_message(req.get("system"))
    if system is not None:
        out_msgs.append(system)
    # System entries between a tool call and its result wait until the results: OpenAI
    # wants tool messages right after the assistant message that called.
    held: list[JSON] = []
    for i, msg in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _fail("message must be an object", p)
        role = msg.get("role")
        if role == "user":
            turn = _user_messages(msg.get("content"), f"{p}.content", ctx)
            results = 0
            while results < len(turn) and turn[results]["role"] == "tool":
                results += 1
            out_msgs.extend([*turn[:results], *held, *turn[results:]])
            held = []
        elif role == "assistant":
            out_msgs.extend(held)
            held = []
            assistant = _assistant_message(msg.get("content"), f"{p}.content", ctx)
            if assistant is not None:
                out_msgs.append(assistant)
        elif role == "system":
            mid = _system_message(msg.get("content"), f"{p}.content")
            if mid is None:
                continue
            if held or (out_msgs and out_msgs[-1].get("tool_calls")):
                held.append(mid)
            else:
                out_msgs.append(mid)
        else:
            raise _fail(f"unsupported role {role!r}", f"{p}.role")
    out_msgs.extend(held)
    out: JSON = {"model": req.get("model"), "messages": out_msgs}
    copy_limits(req, out, "max_tokens")
    stops = req.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("stop_sequences must be a list of strings", "stop_sequences")
        out["stop"] = stops
    if req.get("tools"):
        tools = _openai_tools(req["tools"], ctx)
        if tools:
            out["tools"] = tools
    if req.get("tool_choice") is not None:
        choice, no_parallel = _openai_tool_choice(req["tool_choice"])
        if "tools" in out:
            out["tool_choice"] = choice
            if no_parallel:
                out["parallel_tool_calls"] = False
    response_format = _response_format(req)
    if response_format is not None:
        out["response_format"] = response_format
    _thinking(req, out, ctx)
    _context_management(req, ctx)
    user_id = _user_id(req.get("metadata"))
    if user_id is not None:
        out["user"] = user_id
    for key in _ANTHROPIC_ONLY:
        if req.get(key) is not None:
            ctx.warn(f"'{key}' is Anthropic's own and was ignored")
    if req.get("compaction") is not None:
        ctx.lossy("compaction", "compaction requests are only available on Anthropic")
    thread = req.get("thread")
    if isinstance(thread, dict) and thread.get("type") == "continue":
        # The earlier turns are held by Anthropic: the target would see only this one.
        ctx.lossy("thread", "continuing a server-held thread is only available on Anthropic")
    elif thread is not None:
        ctx.warn("'thread' is Anthropic's own and was ignored")
    for key in req:
        if key not in _KNOWN:
            # Shown by name only after validation: the name is client text.
            name = key if key.isidentifier() and len(key) <= 40 else "(unprintable)"
            message = f"the field '{name}' is unknown to the gateway"
            if refuse_unknown:
                raise _fail(message, name)
            ctx.warn(f"{message}; '{name}' was ignored")
    stream = req.get("stream")
    if stream is not None:
        out["stream"] = bool(stream)
        if stream:
            # The Anthropic message_delta needs the final usage.
            out["stream_options"] = {"include_usage": True}
    return Translated(out, ctx.warnings)
