"""OpenAI chat completions request (the hub) -> Gemini ``generateContent`` body.

Design choices
--------------
* **Schema dialect.** Tool parameters and ``json_schema`` response formats are sent as
  ``parametersJsonSchema`` / ``responseJsonSchema``, Gemini's full JSON Schema fields,
  rather than the OpenAPI-subset ``parameters`` / ``responseSchema``: the latter reject
  ``additionalProperties``, ``$ref``, ``const``... and stripping them would silently
  change what the model may produce. Only the meta key ``$schema`` is removed.
* **Reasoning.** ``reasoning_effort`` maps to ``thinkingConfig``: for Gemini 3+ models
  to ``thinkingLevel`` (on "pro" models, which lack ``minimal``/``medium``, those round
  to ``low``/``high``); for older models to ``thinkingBudget`` tokens: none -> 0,
  minimal -> 512, low -> 1024, medium -> 8192, high/xhigh -> 24576 (Google's own
  OpenAI-compatibility figures; 2.5 Pro cannot disable thinking so none -> 128). A
  numeric budget in the hub's ``thinking`` extension (an Anthropic client's
  ``budget_tokens``) is sent as ``thinkingBudget`` instead, capped at the model's
  ceiling, with ``includeThoughts`` so the thoughts come back as thinking blocks.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from aigw.translate.common import JSON, Translated, TranslateOptions, TranslationError
from aigw.translate.gemini.shared import (
    _bare_model,
    _guess_mime,
    _is_int,
    _is_num,
    _parse_args,
    _signature_of,
    _text_of,
)

SKIP_SIGNATURE = "skip_thought_signature_validator"


def _gemini_major(model: str) -> int:
    """Major version from names like ``gemini-3-pro-preview``; 0 if not a Gemini name."""
    m = re.match(r"gemini-(\d+)", _bare_model(model))
    return int(m.group(1)) if m else 0


class _Drops:
    """Collects warnings for parameters dropped while translating a request."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.warnings: list[str] = []

    def benign(self, param: str, why: str = "Gemini has no equivalent") -> None:
        self.warnings.append(f"'{param}' was dropped: {why}.")

    def approximated(self, param: str, why: str) -> None:
        self.warnings.append(f"'{param}' was approximated: {why}.")

    def lossy(self, param: str, why: str) -> None:
        """A loss that changes the meaning: an error when strict, else a warning."""
        if self.strict:
            raise TranslationError(f"'{param}' cannot be sent to Gemini: {why}.", param=param)
        self.warnings.append(f"'{param}' was dropped: {why}.")


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _parse_data_url(url: str, param: str, default_mime: str) -> tuple[str, str]:
    """``data:<mime>[;...][;base64],<data>`` -> (mime, base64 data)."""
    head, sep, payload = url[5:].partition(",")
    if not sep:
        raise TranslationError("malformed data: URL (no comma)", param=param)
    fields = head.split(";")
    mime = fields[0].strip() or default_mime
    if "base64" in (f.strip().lower() for f in fields[1:]):
        data = "".join(payload.split())
        # Standard or URL-safe alphabet: Gemini accepts both.
        if not _BASE64.fullmatch(data):
            raise TranslationError("data: URL is not valid base64", param=param)
        return mime, data
    return mime, base64.b64encode(unquote_to_bytes(payload)).decode()


def _media_part(url: str, param: str, default_mime: str = "image/jpeg") -> JSON:
    if url.startswith("data:"):
        mime, data = _parse_data_url(url, param, default_mime)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if not url:
        raise TranslationError("empty URL", param=param)
    return {"fileData": {"mimeType": _guess_mime(url, default_mime), "fileUri": url}}


def _user_parts(content: Any, param: str, drops: _Drops) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts", param=param)
    parts: list[JSON] = []
    for j, part in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise TranslationError("content part must be an object", param=p)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise TranslationError("text part needs a string 'text'", param=f"{p}.text")
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise TranslationError("image_url part needs a string url", param=f"{p}.image_url")
            parts.append(_media_part(url, f"{p}.image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise TranslationError("input_audio part needs 'data'", param=f"{p}.input_audio")
            fmt = audio.get("format", "wav")
            mime = {"wav": "audio/wav", "mp3": "audio/mp3"}.get(str(fmt))
            if mime is None:
                raise TranslationError(
                    f"unsupported audio format {fmt!r}", param=f"{p}.input_audio.format"
                )
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            parts.append(_file_part(part.get("file"), f"{p}.file"))
        else:
            drops.lossy(p, f"content part type {kind!r} is not supported")
    return parts


def _file_part(file: Any, param: str) -> JSON:
    if not isinstance(file, dict):
        raise TranslationError("file part needs a 'file' object", param=param)
    data = file.get("file_data")
    fname = file.get("filename")
    filename = fname if isinstance(fname, str) else ""
    if isinstance(data, str) and data:
        if data.startswith("data:"):
            return _media_part(data, f"{param}.file_data", _guess_mime(filename, "application/pdf"))
        return {"inlineData": {"mimeType": _guess_mime(filename, "application/pdf"), "data": data}}
    if file.get("file_id") is not None:
        raise TranslationError(
            "OpenAI file ids cannot be read by Gemini; send the file inline as file_data",
            param=f"{param}.file_id",
        )
    raise TranslationError("file part needs 'file_data'", param=param)


def _assistant_parts(msg: JSON, param: str, names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = []
    text = _text_of(msg.get("content"), f"{param}.content", ("text", "refusal"))
    if text:
        parts.append({"text": text})
    calls = msg.get("tool_calls")
    if calls is None:
        return parts
    if not isinstance(calls, list):
        raise TranslationError("tool_calls must be a list", param=f"{param}.tool_calls")
    for k, tc in enumerate(calls):
        p = f"{param}.tool_calls[{k}]"
        if not isinstance(tc, dict):
            raise TranslationError("tool call must be an object", param=p)
        if tc.get("type", "function") != "function":
            raise TranslationError(f"tool call type {tc.get('type')!r} is not supported", param=p)
        fn = tc.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(fn, dict) or not isinstance(name, str) or not name:
            raise TranslationError("tool call needs function.name", param=f"{p}.function")
        call: JSON = {
            "functionCall": {
                "name": name,
                "args": _parse_args(fn.get("arguments"), f"{p}.function.arguments"),
            }
        }
        sig = _signature_of(tc)
        if sig:
            call["thoughtSignature"] = sig
        parts.append(call)
        if isinstance(tc.get("id"), str):
            names[tc["id"]] = name
    return parts


def _tool_result(msg: JSON, param: str, names: dict[str, str]) -> JSON:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str):
        raise TranslationError(
            "tool message needs a string tool_call_id", param=f"{param}.tool_call_id"
        )
    name = names.get(call_id)
    if name is None:
        raise TranslationError(
            f"tool_call_id {call_id!r} matches no earlier assistant tool call",
            param=f"{param}.tool_call_id",
        )
    text = _text_of(msg.get("content"), f"{param}.content")
    try:
        result: Any = orjson.loads(text) if text.strip() else text
    except orjson.JSONDecodeError:
        result = text
    return {"functionResponse": {"name": name, "response": {"result": result}}}


def _contents(messages: Any, drops: _Drops) -> tuple[list[JSON], list[JSON]]:
    """OpenAI messages -> (systemInstruction parts, contents), same-role turns merged."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list", param="messages")
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, latest wins

    def add(role: str, parts: list[JSON]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, msg in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TranslationError("message must be an object", param=p)
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _text_of(msg.get("content"), f"{p}.content")
            if text:
                system.append({"text": text})
        elif role == "user":
            if "content" not in msg:
                raise TranslationError("user message needs content", param=f"{p}.content")
            add("user", _user_parts(msg["content"], f"{p}.content", drops))
        elif role == "assistant":
            add("model", _assistant_parts(msg, p, names))
        elif role == "tool":
            add("user", [_tool_result(msg, p, names)])
        elif role == "function":
            raise TranslationError(
                "legacy 'function' messages are not supported; use tools", param=f"{p}.role"
            )
        else:
            raise TranslationError(f"unknown role {role!r}", param=f"{p}.role")
    return system, contents


def _sign_calls(contents: list[JSON]) -> None:
    """Give each model turn with unsigned calls the sentinel Gemini 3 accepts."""
    for content in contents:
        if content["role"] != "model":
            continue
        calls = [p for p in content["parts"] if "functionCall" in p]
        if calls and not any("thoughtSignature" in p for p in calls):
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _clean_schema(schema: JSON) -> JSON:
    """Drop the root ``$schema``: a dialect declaration, not a constraint. Deeper keys
    are left alone, as a property may well be named ``$schema``."""
    return {k: v for k, v in schema.items() if k != "$schema"}


def _tools(tools: Any, tool_choice: Any, drops: _Drops) -> tuple[list[JSON], JSON | None]:
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list", param="tools")
    decls: list[JSON] = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise TranslationError("tool must be an object", param=p)
        if tool.get("type", "function") != "function":
            drops.lossy(p, f"tool type {tool.get('type')!r} is not supported")
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise TranslationError("function tool needs function.name", param=f"{p}.function")
        decl: JSON = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise TranslationError(
                    "parameters must be an object", param=f"{p}.function.parameters"
                )
            decl["parametersJsonSchema"] = _clean_schema(params)
        decls.append(decl)

    config: JSON | None = None
    if tool_choice is not None:
        if tool_choice == "auto":
            config = {"mode": "AUTO"}
        elif tool_choice == "none":
            config = {"mode": "NONE"}
        elif tool_choice == "required":
            config = {"mode": "ANY"}
        elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
            fn = tool_choice.get("function")
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str):
                raise TranslationError("tool_choice needs function.name", param="tool_choice")
            config = {"mode": "ANY", "allowedFunctionNames": [name]}
        elif isinstance(tool_choice, dict) and tool_choice.get("type") == "allowed_tools":
            allowed = tool_choice.get("allowed_tools")
            entries = allowed.get("tools") if isinstance(allowed, dict) else None
            if not isinstance(allowed, dict) or not isinstance(entries, list):
                raise TranslationError("allowed_tools needs a tools list", param="tool_choice")
            wanted = [
                e["function"]["name"]
                for e in entries
                if isinstance(e, dict)
                and isinstance(e.get("function"), dict)
                and isinstance(e["function"].get("name"), str)
            ]
            if allowed.get("mode") == "required":
                config = {"mode": "ANY", "allowedFunctionNames": wanted}
            else:
                # Gemini restricts names only in ANY mode; hiding the others is equivalent.
                decls = [d for d in decls if d["name"] in wanted]
                config = {"mode": "AUTO"}
        else:
            raise TranslationError(f"unsupported tool_choice {tool_choice!r}", param="tool_choice")
    out = [{"functionDeclarations": decls}] if decls else []
    return out, ({"functionCallingConfig": config} if config else None)


_BUDGET = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}


_EFFORTS = ("none", *_BUDGET)


def _thinking(effort: Any, model: str, drops: _Drops) -> JSON:
    if effort not in _EFFORTS:
        raise TranslationError(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
    pro = re.search(r"-pro\b", _bare_model(model)) is not None
    if _gemini_major(model) >= 3:
        if effort == "none":
            drops.approximated(
                "reasoning_effort",
                "Gemini 3 models cannot disable thinking; using the lowest level",
            )
        level = {
            "none": "minimal",
            "minimal": "minimal",
            "low": "low",
            "medium": "medium",
            "high": "high",
            "xhigh": "high",
        }[effort]
        if pro:
            level = {"minimal": "low", "medium": "high"}.get(level, level)
        return {"thinkingLevel": level}
    if effort == "none":
        if pro:
            drops.approximated(
                "reasoning_effort",
                "Gemini Pro models cannot disable thinking; using the minimum budget",
            )
            return {"thinkingBudget": 128}
        return {"thinkingBudget": 0}
    return {"thinkingBudget": _BUDGET[effort]}


# Gemini 2.5's thinkingBudget ceilings (Pro, and Flash / Flash-Lite).
_MAX_BUDGET_PRO = 32768
_MAX_BUDGET = 24576


def _thinking_config(req: JSON, model: str, drops: _Drops) -> JSON:
    """``reasoning_effort`` and the hub's ``thinking`` extension -> ``thinkingConfig``.

    A numeric budget goes as ``thinkingBudget`` (capped at the model's ceiling); the
    extension's presence means the client shows thoughts (Anthropic's thinking
    blocks), so ``includeThoughts`` is set unless it asked for them omitted."""
    effort = req.get("reasoning_effort")
    thinking = req.get("thinking")
    if thinking is not None and not isinstance(thinking, dict):
        raise TranslationError("thinking must be an object", param="thinking")
    config: JSON = {}
    budget = thinking.get("budget_tokens") if thinking else None
    if thinking and thinking.get("type") == "enabled" and _is_int(budget) and budget > 0:
        ceiling = _MAX_BUDGET_PRO if re.search(r"-pro\b", _bare_model(model)) else _MAX_BUDGET
        if budget > ceiling:
            drops.approximated("thinking", f"budget {budget} lowered to Gemini's {ceiling}")
            budget = ceiling
        config["thinkingBudget"] = budget
    elif effort is not None:
        config = _thinking(effort, model, drops)
    if thinking and thinking.get("display") != "omitted" and config.get("thinkingBudget") != 0:
        config["includeThoughts"] = True
    return config


def _number(req: JSON, key: str, integer: bool = False) -> Any:
    v = req[key]
    if not (_is_int(v) if integer else _is_num(v)):
        raise TranslationError(
            f"'{key}' must be {'an integer' if integer else 'a number'}", param=key
        )
    return v


# Parameters whose loss does not change what the model is asked to do.
_BENIGN = {
    "user",
    "logit_bias",
    "service_tier",
    "store",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "verbosity",
    "prediction",
}


_HANDLED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "thinking",
    "modalities",
}


def chat_to_gemini_request(req: JSON, opts: TranslateOptions) -> Translated:
    """OpenAI chat request -> Gemini ``generateContent`` body (the model goes in the URL)."""
    if not isinstance(req, dict):
        raise TranslationError("request body must be a JSON object")
    drops = _Drops(opts.strict)
    system, contents = _contents(req.get("messages"), drops)
    if not contents:
        raise TranslationError(
            "Gemini needs at least one user, assistant or tool message", param="messages"
        )
    body: JSON = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}

    gen: JSON = {}
    if req.get("temperature") is not None:
        gen["temperature"] = _number(req, "temperature")
    if req.get("top_p") is not None:
        gen["topP"] = _number(req, "top_p")
    if req.get("top_k") is not None:  # not OpenAI's, but common in OpenAI-compatible APIs
        gen["topK"] = _number(req, "top_k", integer=True)
    for key in ("max_tokens", "max_completion_tokens"):  # the newer name wins
        if req.get(key) is not None:
            gen["maxOutputTokens"] = _number(req, key, integer=True)
    if req.get("n") is not None and _number(req, "n", integer=True) != 1:
        gen["candidateCount"] = req["n"]
    stop = req.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise TranslationError("'stop' must be a string or a list of strings", param="stop")
        if stop:
            gen["stopSequences"] = stop
    if req.get("seed") is not None:
        gen["seed"] = _number(req, "seed", integer=True)
    if req.get("presence_penalty") is not None:
        gen["presencePenalty"] = _number(req, "presence_penalty")
    if req.get("frequency_penalty") is not None:
        gen["frequencyPenalty"] = _number(req, "frequency_penalty")
    if req.get("logprobs"):
        gen["responseLogprobs"] = True
        if req.get("top_logprobs") is not None:
            gen["logprobs"] = _number(req, "top_logprobs", integer=True)
    elif req.get("top_logprobs") is not None:
        raise TranslationError("'top_logprobs' requires 'logprobs': true", param="top_logprobs")

    fmt = req.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            gen["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise TranslationError(
                    "json_schema needs a 'schema' object", param="response_format.json_schema"
                )
            gen["responseMimeType"] = "application/json"
            gen["responseJsonSchema"] = _clean_schema(schema)
        elif kind != "text":
            raise TranslationError(f"unsupported response_format {kind!r}", param="response_format")

    thinking = _thinking_config(req, opts.upstream_model, drops)
    if thinking:
        gen["thinkingConfig"] = thinking

    modalities = req.get("modalities")
    if modalities is not None and modalities != ["text"]:
        drops.lossy("modalities", "only text output is supported")

    tools, tool_config = _tools(req.get("tools"), req.get("tool_choice"), drops)
    if tools:
        body["tools"] = tools
    if tool_config and tools:
        body["toolConfig"] = tool_config
    if req.get("parallel_tool_calls") is False:
        drops.benign("parallel_tool_calls", "Gemini cannot forbid parallel function calls")

    if _gemini_major(opts.upstream_model) >= 3:
        _sign_calls(contents)
    if gen:
        body["generationConfig"] = gen

    for key in req:
        if key in _HANDLED:
            continue
        if key in _BENIGN:
            drops.benign(key)
        else:
            drops.lossy(key, "Gemini has no equivalent")
    return Translated(body, drops.warnings)
