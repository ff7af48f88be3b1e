"""OpenAI chat completions / embeddings (the hub) <-> Google Gemini API (``v1beta``).

Covers ``generateContent``, ``streamGenerateContent?alt=sse`` and
``batchEmbedContents`` in both directions. Everything here is pure: dicts in, dicts out.

Design choices worth knowing:

* **Schema dialect.** Tool parameters and ``json_schema`` response formats are sent as
  ``parametersJsonSchema`` / ``responseJsonSchema``, Gemini's full JSON Schema fields,
  rather than the OpenAPI-subset ``parameters`` / ``responseSchema``: the latter reject
  ``additionalProperties``, ``$ref``, ``const``... and stripping them would silently
  change what the model may produce. Only the meta key ``$schema`` is removed. In the
  other direction a Gemini client's OpenAPI-style ``parameters``/``responseSchema``
  (upper-case types, ``nullable``, int64-as-string bounds) is converted to JSON Schema.
* **Reasoning.** ``reasoning_effort`` maps to ``thinkingConfig``: for Gemini 3+ models
  to ``thinkingLevel`` (on "pro" models, which lack ``minimal``/``medium``, those round
  to ``low``/``high``); for older models to ``thinkingBudget`` tokens: none -> 0,
  minimal -> 512, low -> 1024, medium -> 8192, high/xhigh -> 24576 (Google's own
  OpenAI-compatibility figures; 2.5 Pro cannot disable thinking so none -> 128).
* **Thought signatures.** Gemini 3 rejects a replayed ``functionCall`` without its
  ``thoughtSignature``. Responses carry it to OpenAI clients the way Google's own
  OpenAI endpoint does, in ``tool_calls[].extra_content.google.thought_signature``;
  requests put it back. When a Gemini 3+ history has none (the client dropped it, or
  the calls came from another model), the documented ``skip_thought_signature_validator``
  sentinel is sent instead.
* **Tool call ids.** Gemini pairs calls and responses by position and name; the
  ``generateContent`` request schema rejects ``id`` on ``functionCall`` and
  ``functionResponse``, so ids are never sent. A ``functionCall.id`` in a response is
  reused as the OpenAI id, otherwise ids are ``call_<n>``; a tool message's name is
  taken from the closest preceding assistant tool call with that id.
* **Usage.** ``prompt_tokens`` = promptTokenCount (+ toolUsePromptTokenCount, input the
  model read from tools, billed as input); ``completion_tokens`` = candidatesTokenCount +
  thoughtsTokenCount, so totals agree with ``totalTokenCount``.
* **Streams.** Gemini frames SSE as ``data: {json}\\r\\n\\r\\n`` with no terminator
  (:func:`sse_event`), sends each ``functionCall`` whole and puts ``usageMetadata`` on
  the chunk carrying ``finishReason``. :class:`ChatToGeminiStream` therefore buffers
  streamed tool arguments and holds the finishing candidate until the usage chunk (or
  :meth:`ChatToGeminiStream.finish`) so the last object has both.
* **Snake case.** Google's JSON parser accepts ``system_instruction``,
  ``inline_data``... as well as camelCase, and its curl docs use them, so client
  requests are read in either spelling.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import unquote_to_bytes, urlsplit

import orjson

from aigw.translate.common import JSON, Translated, TranslateOptions, TranslationError
from aigw.usage import Usage, usage_from_openai

SKIP_SIGNATURE = "skip_thought_signature_validator"
_MAX_EMBED_BATCH = 100  # batchEmbedContents rejects larger batches.

# -- small helpers --------------------------------------------------------------------


@functools.cache
def _snake(name: str) -> str:
    # Cached: field names are a small fixed set, looked up many times per request.
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _field(d: JSON, name: str) -> Any:
    """``d[name]`` in camelCase or snake_case, as Google's JSON parser accepts both."""
    value = d.get(name)
    if value is None:
        value = d.get(_snake(name))
    return value


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _dumps(v: Any) -> str:
    return orjson.dumps(v).decode()


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _bare_model(model: str) -> str:
    return model.removeprefix("models/")


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


# -- media ----------------------------------------------------------------------------

_EXT_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "bmp": "image/bmp",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "csv": "text/csv",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _guess_mime(url: str, default: str = "image/jpeg") -> str:
    path = urlsplit(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _EXT_MIME.get(ext, default)


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


# -- OpenAI request -> Gemini request ---------------------------------------------------


def _text_of(content: Any, param: str, allowed: tuple[str, ...] = ("text",)) -> str:
    """Content that must be text only (system, tool, assistant): joined text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts", param=param)
    out: list[str] = []
    for j, part in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise TranslationError("content part must be an object", param=p)
        kind = part.get("type")
        if kind not in allowed:
            raise TranslationError(f"content part type {kind!r} is not allowed here", param=p)
        text = part.get(kind) if kind == "refusal" else part.get("text")
        if not isinstance(text, str):
            raise TranslationError(f"content part needs a string '{kind}'", param=p)
        out.append(text)
    return "".join(out)


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


def _parse_args(raw: Any, param: str) -> JSON:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise TranslationError("function arguments must be a JSON string", param=param)
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TranslationError("function arguments are not valid JSON", param=param) from None
    if not isinstance(args, dict):
        raise TranslationError("function arguments must be a JSON object", param=param)
    return args


def _signature_of(tc: JSON) -> str | None:
    extra = tc.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    sig = google.get("thought_signature") if isinstance(google, dict) else None
    return sig if isinstance(sig, str) and sig else None


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

    effort = req.get("reasoning_effort")
    if effort is not None:
        gen["thinkingConfig"] = _thinking(effort, opts.upstream_model, drops)

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


# -- Gemini response -> OpenAI response -----------------------------------------------

_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
}


def _finish_reason(reason: Any, has_calls: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if isinstance(reason, str) and reason in _FILTERED:
        return "content_filter"
    # STOP and the rest (OTHER, MALFORMED_FUNCTION_CALL, ...) end the turn normally.
    return "tool_calls" if has_calls else "stop"


def usage_from_gemini(u: object) -> Usage | None:
    """Read a Gemini ``usageMetadata`` object."""
    if not isinstance(u, dict):
        return None
    thoughts = _int(u.get("thoughtsTokenCount"))
    return Usage(
        prompt_tokens=_int(u.get("promptTokenCount")) + _int(u.get("toolUsePromptTokenCount")),
        completion_tokens=_int(u.get("candidatesTokenCount")) + thoughts,
        cached_tokens=_int(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _openai_usage(u: Usage) -> JSON:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _parts(candidate: JSON) -> list[JSON]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _visible_text(parts: list[JSON]) -> str:
    # Thought summaries (thought: true) are not part of the answer.
    return "".join(
        p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
    )


def _tool_call(part: JSON, n: int) -> JSON:
    fc = part["functionCall"]
    cid = fc.get("id")
    call: JSON = {
        "id": cid if isinstance(cid, str) and cid else f"call_{n}",
        "type": "function",
        "function": {"name": str(fc.get("name", "")), "arguments": _dumps(fc.get("args") or {})},
    }
    sig = part.get("thoughtSignature")
    if isinstance(sig, str) and sig:
        call["extra_content"] = {"google": {"thought_signature": sig}}
    return call


def _function_calls(parts: list[JSON]) -> list[JSON]:
    return [p for p in parts if isinstance(p.get("functionCall"), dict)]


def _bytes(token: str) -> list[int]:
    return list(token.encode())


def _logprobs_from_gemini(result: Any) -> JSON | None:
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates")
    if not isinstance(chosen, list):
        return None
    tops = result.get("topCandidates")
    top: list[Any] = tops if isinstance(tops, list) else []
    content: list[JSON] = []
    for i, c in enumerate(chosen):
        if not isinstance(c, dict):
            continue
        alts = top[i].get("candidates") if i < len(top) and isinstance(top[i], dict) else None
        token = str(c.get("token", ""))
        content.append(
            {
                "token": token,
                "logprob": c.get("logProbability", 0.0),
                "bytes": _bytes(token),
                "top_logprobs": [
                    {
                        "token": str(a.get("token", "")),
                        "logprob": a.get("logProbability", 0.0),
                        "bytes": _bytes(str(a.get("token", ""))),
                    }
                    for a in (alts if isinstance(alts, list) else [])
                    if isinstance(a, dict)
                ],
            }
        )
    return {"content": content, "refusal": None}


def _candidates(resp: JSON) -> list[JSON]:
    cands = resp.get("candidates")
    if cands is None:
        return []
    if not isinstance(cands, list):
        raise TranslationError("Gemini response 'candidates' is not a list")
    return [c for c in cands if isinstance(c, dict)]


def gemini_to_chat_response(resp: JSON, *, model: str) -> JSON:
    """Gemini ``GenerateContentResponse`` -> OpenAI ``chat.completion``."""
    if not isinstance(resp, dict):
        raise TranslationError("Gemini response is not a JSON object")
    choices: list[JSON] = []
    n = 0
    for pos, cand in enumerate(_candidates(resp)):
        parts = _parts(cand)
        calls = []
        for part in _function_calls(parts):
            calls.append(_tool_call(part, n))
            n += 1
        text = _visible_text(parts)
        message: JSON = {
            "role": "assistant",
            "content": text or (None if calls else ""),
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        index = cand.get("index")
        choices.append(
            {
                "index": index if _is_int(index) else pos,
                "message": message,
                "logprobs": _logprobs_from_gemini(cand.get("logprobsResult")),
                "finish_reason": _finish_reason(cand.get("finishReason"), bool(calls)),
            }
        )
    if not choices:
        # No candidates: the prompt itself was blocked (promptFeedback.blockReason).
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        )
    rid = resp.get("responseId")
    return {
        "id": f"chatcmpl-{rid}" if isinstance(rid, str) and rid else _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": _openai_usage(usage_from_gemini(resp.get("usageMetadata")) or Usage()),
    }


class GeminiToChatStream:
    """Gemini ``streamGenerateContent`` SSE data objects -> OpenAI chunks."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self._meta: JSON | None = None  # the latest usageMetadata with counts
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> tool calls so far
        self._n = 0  # tool calls so far across choices, for call_<n> ids

    @property
    def usage(self) -> Usage:
        """Exact usage so far. Google repeats the running totals on every chunk, so
        only the latest is kept and converted when asked for."""
        return (usage_from_gemini(self._meta) if self._meta is not None else None) or Usage()

    def _chunk(
        self, index: int, delta: JSON, finish: str | None = None, logprobs: JSON | None = None
    ) -> JSON:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ],
        }

    def feed(self, data: JSON) -> list[JSON]:
        """Translate one SSE ``data:`` object (a list of them is also accepted)."""
        if isinstance(data, list):
            return [c for item in data for c in self.feed(item)]
        if not isinstance(data, dict):
            raise TranslationError("Gemini stream event is not a JSON object")
        if self._id is None:
            rid = data.get("responseId")
            self._id = f"chatcmpl-{rid}" if isinstance(rid, str) and rid else _new_id("chatcmpl-")
        meta = data.get("usageMetadata")
        # Vertex sends count-less metadata ({"trafficType": ...}) before the last chunk.
        if isinstance(meta, dict) and ("promptTokenCount" in meta or "totalTokenCount" in meta):
            self._meta = meta
        out: list[JSON] = []
        cands = _candidates(data)
        feedback = data.get("promptFeedback")
        if (
            not cands
            and isinstance(feedback, dict)
            and feedback.get("blockReason")
            and 0 not in self._finished
        ):
            self._finished.add(0)
            if 0 not in self._started:
                out.append(self._chunk(0, {"content": ""}))
            out.append(self._chunk(0, {}, "content_filter"))
        for pos, cand in enumerate(cands):
            index = cand.get("index")
            idx = index if _is_int(index) else pos
            if idx in self._finished:
                continue
            parts = _parts(cand)
            text = _visible_text(parts)
            if text:
                out.append(
                    self._chunk(
                        idx,
                        {"content": text},
                        logprobs=_logprobs_from_gemini(cand.get("logprobsResult")),
                    )
                )
            for part in _function_calls(parts):
                k = self._calls.get(idx, 0)
                self._calls[idx] = k + 1
                call = _tool_call(part, self._n)
                self._n += 1
                out.append(self._chunk(idx, {"tool_calls": [{"index": k, **call}]}))
            reason = cand.get("finishReason")
            if reason:
                self._finished.add(idx)
                if idx not in self._started:
                    out.append(self._chunk(idx, {"content": ""}))
                out.append(self._chunk(idx, {}, _finish_reason(reason, idx in self._calls)))
        return out

    def final_usage_chunk(self) -> JSON:
        """The ``stream_options.include_usage`` chunk: no choices, exact usage."""
        return {
            "id": self._id or _new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [],
            "usage": _openai_usage(self.usage),
        }


# -- Gemini request -> OpenAI request (Gemini clients) -----------------------------------

_INT_KEYS = {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}


def _to_json_schema(s: Any, param: str) -> Any:
    """Gemini's OpenAPI-style ``Schema`` -> JSON Schema."""
    if not isinstance(s, dict):
        raise TranslationError("schema must be an object", param=param)
    out: JSON = {}
    nullable = False
    for raw_key, val in s.items():
        key = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), raw_key)
        if key == "type":
            if isinstance(val, str) and val.upper() != "TYPE_UNSPECIFIED":
                out["type"] = val.lower()
        elif key == "nullable":
            nullable = bool(val)
        elif key == "properties" and isinstance(val, dict):
            out["properties"] = {
                k: _to_json_schema(v, f"{param}.properties.{k}") for k, v in val.items()
            }
        elif key == "items":
            out["items"] = _to_json_schema(val, f"{param}.items")
        elif key == "anyOf" and isinstance(val, list):
            out["anyOf"] = [_to_json_schema(v, f"{param}.anyOf[{i}]") for i, v in enumerate(val)]
        elif key in _INT_KEYS:
            # int64 fields travel as strings in Google's JSON.
            out[key] = int(val) if isinstance(val, str) and val.isdigit() else val
        elif key == "propertyOrdering":
            continue
        elif key == "example":
            out["examples"] = [val]
        else:
            out[key] = val
    if nullable and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _openai_schema(decl_or_cfg: JSON, json_key: str, openapi_key: str, param: str) -> Any:
    direct = _field(decl_or_cfg, json_key)
    if direct is not None:
        return direct
    schema = _field(decl_or_cfg, openapi_key)
    return None if schema is None else _to_json_schema(schema, f"{param}.{openapi_key}")


def _inline_to_openai(blob: Any, param: str) -> JSON:
    if not isinstance(blob, dict):
        raise TranslationError("inlineData must be an object", param=param)
    mime = _field(blob, "mimeType")
    data = blob.get("data")
    if not isinstance(mime, str) or not isinstance(data, str):
        raise TranslationError("inlineData needs mimeType and data", param=param)
    mime = mime.lower()
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    if mime in ("audio/wav", "audio/x-wav", "audio/wave"):
        return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
    if mime in ("audio/mp3", "audio/mpeg"):
        return {"type": "input_audio", "input_audio": {"data": data, "format": "mp3"}}
    if mime == "application/pdf":
        name = _field(blob, "displayName")
        return {
            "type": "file",
            "file": {
                "filename": name if isinstance(name, str) else "document.pdf",
                "file_data": f"data:{mime};base64,{data}",
            },
        }
    if mime.startswith("text/"):
        try:
            return {"type": "text", "text": base64.b64decode(data).decode()}
        except (binascii.Error, ValueError):
            raise TranslationError("inlineData is not valid base64 text", param=param) from None
    raise TranslationError(
        f"inline data of type {mime!r} cannot be sent to this provider", param=param
    )


def _file_to_openai(fd: Any, param: str) -> JSON:
    if not isinstance(fd, dict) or not isinstance(_field(fd, "fileUri"), str):
        raise TranslationError("fileData needs fileUri", param=param)
    uri: str = _field(fd, "fileUri")
    mime = _field(fd, "mimeType")
    mime = mime if isinstance(mime, str) else _guess_mime(uri)
    host = urlsplit(uri).hostname or ""
    if not uri.startswith(("http://", "https://")) or host.endswith(
        "generativelanguage.googleapis.com"
    ):
        raise TranslationError(
            "Gemini Files API and gs:// URIs cannot be read by this provider; send the data inline",
            param=param,
        )
    if not mime.startswith("image/"):
        raise TranslationError(f"file of type {mime!r} can only be sent inline", param=param)
    return {"type": "image_url", "image_url": {"url": uri}}


def _user_content(parts: list[JSON]) -> str | list[JSON]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _tool_content(response: Any) -> str:
    if isinstance(response, dict) and len(response) == 1:
        ((key, value),) = response.items()
        if key in ("result", "output"):  # our own wrapper and Google's convention
            return value if isinstance(value, str) else _dumps(value)
    return "" if response is None else _dumps(response)


@dataclass(slots=True)
class _Pending:
    id: str
    name: str


def _gemini_messages(req: JSON) -> list[JSON]:
    messages: list[JSON] = []
    sys_inst = _field(req, "systemInstruction")
    if sys_inst is not None:
        if isinstance(sys_inst, str):
            text = sys_inst
        elif isinstance(sys_inst, dict) and isinstance(sys_inst.get("parts"), list):
            text = "".join(
                p["text"]
                for p in sys_inst["parts"]
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        else:
            raise TranslationError("systemInstruction must be a Content", param="systemInstruction")
        if text:
            messages.append({"role": "system", "content": text})

    contents = req.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise TranslationError("contents must be a non-empty list", param="contents")
    pending: list[_Pending] = []  # calls of the last model turn awaiting a response
    n = 0
    for i, content in enumerate(contents):
        p = f"contents[{i}]"
        if not isinstance(content, dict):
            raise TranslationError("content must be an object", param=p)
        role = content.get("role") or "user"
        parts = content.get("parts")
        if not isinstance(parts, list):
            raise TranslationError("content needs a parts list", param=f"{p}.parts")
        if role == "model":
            texts: list[str] = []
            calls: list[JSON] = []
            pending = []
            for j, part in enumerate(parts):
                pp = f"{p}.parts[{j}]"
                if not isinstance(part, dict):
                    raise TranslationError("part must be an object", param=pp)
                if part.get("thought"):
                    continue
                fc = _field(part, "functionCall")
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(fc, dict):
                    name = fc.get("name")
                    if not isinstance(name, str) or not name:
                        raise TranslationError(
                            "functionCall needs a name", param=f"{pp}.functionCall"
                        )
                    given = fc.get("id")
                    cid = given if isinstance(given, str) and given else f"call_{n}"
                    n += 1
                    args = fc.get("args") or {}
                    calls.append(
                        {
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": _dumps(args)},
                        }
                    )
                    pending.append(_Pending(cid, name))
                elif _field(part, "thoughtSignature") is not None and len(part) == 1:
                    continue
                else:
                    raise TranslationError("this kind of model part cannot be translated", param=pp)
            msg: JSON = {"role": "assistant", "content": "".join(texts) or None}
            if calls:
                msg["tool_calls"] = calls
            if texts or calls:
                messages.append(msg)
        elif role in ("user", "function"):
            user_parts: list[JSON] = []
            for j, part in enumerate(parts):
                pp = f"{p}.parts[{j}]"
                if not isinstance(part, dict):
                    raise TranslationError("part must be an object", param=pp)
                if part.get("thought"):
                    continue
                fr = _field(part, "functionResponse")
                if isinstance(part.get("text"), str):
                    if part["text"]:
                        user_parts.append({"type": "text", "text": part["text"]})
                elif _field(part, "inlineData") is not None:
                    user_parts.append(
                        _inline_to_openai(_field(part, "inlineData"), f"{pp}.inlineData")
                    )
                elif _field(part, "fileData") is not None:
                    user_parts.append(_file_to_openai(_field(part, "fileData"), f"{pp}.fileData"))
                elif isinstance(fr, dict):
                    name, rid = fr.get("name"), fr.get("id")
                    match = next((c for c in pending if isinstance(rid, str) and c.id == rid), None)
                    match = match or next((c for c in pending if c.name == name), None)
                    if match is None:
                        raise TranslationError(
                            f"functionResponse {name!r} matches no call in the last model turn",
                            param=f"{pp}.functionResponse",
                        )
                    pending.remove(match)
                    # OpenAI wants tool results right after the assistant turn.
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": match.id,
                            "content": _tool_content(fr.get("response")),
                        }
                    )
                else:
                    raise TranslationError("this kind of part cannot be translated", param=pp)
            if user_parts:
                messages.append({"role": "user", "content": _user_content(user_parts)})
        else:
            raise TranslationError(f"unknown role {role!r}", param=f"{p}.role")
    return messages


def _gemini_tools(req: JSON, out: JSON) -> None:
    tools = req.get("tools")
    decls: list[JSON] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise TranslationError("tools must be a list", param="tools")
        for i, tool in enumerate(tools):
            p = f"tools[{i}]"
            if not isinstance(tool, dict):
                raise TranslationError("tool must be an object", param=p)
            for key in tool:
                if key not in ("functionDeclarations", "function_declarations"):
                    raise TranslationError(
                        f"tool {key!r} cannot be sent to this provider", param=f"{p}.{key}"
                    )
            fds = _field(tool, "functionDeclarations") or []
            if not isinstance(fds, list):
                raise TranslationError("functionDeclarations must be a list", param=p)
            for j, fd in enumerate(fds):
                pp = f"{p}.functionDeclarations[{j}]"
                if not isinstance(fd, dict) or not isinstance(fd.get("name"), str):
                    raise TranslationError("function declaration needs a name", param=pp)
                fn: JSON = {"name": fd["name"]}
                if isinstance(fd.get("description"), str):
                    fn["description"] = fd["description"]
                params = _openai_schema(fd, "parametersJsonSchema", "parameters", pp)
                fn["parameters"] = (
                    params if params is not None else {"type": "object", "properties": {}}
                )
                decls.append({"type": "function", "function": fn})

    cfg = _field(req, "toolConfig")
    fcc = _field(cfg, "functionCallingConfig") if isinstance(cfg, dict) else None
    if isinstance(fcc, dict):
        mode = str(fcc.get("mode", "AUTO")).upper()
        names = _field(fcc, "allowedFunctionNames")
        if mode == "NONE":
            out["tool_choice"] = "none"
        elif mode == "ANY":
            if isinstance(names, list) and names:
                # OpenAI names one function or none; narrowing the list is equivalent.
                decls = [d for d in decls if d["function"]["name"] in names]
                out["tool_choice"] = (
                    {"type": "function", "function": {"name": names[0]}}
                    if len(names) == 1
                    else "required"
                )
            else:
                out["tool_choice"] = "required"
        elif decls:
            out["tool_choice"] = "auto"
    if decls:
        out["tools"] = decls
    else:
        out.pop("tool_choice", None)


def _budget_to_effort(cfg: JSON) -> str | None:
    level = _field(cfg, "thinkingLevel")
    if isinstance(level, str) and level.lower() in ("minimal", "low", "medium", "high"):
        return level.lower()
    budget = _field(cfg, "thinkingBudget")
    if not _is_int(budget) or budget < 0:  # -1 = dynamic, the default
        return None
    if budget == 0:
        return "none"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def gemini_to_chat_request(req: JSON, *, model: str, stream: bool) -> JSON:
    """Gemini client request -> OpenAI chat request (hub). ``model`` comes from the URL."""
    if not isinstance(req, dict):
        raise TranslationError("request body must be a JSON object")
    if _field(req, "cachedContent") is not None:
        raise TranslationError("cachedContent refers to a Gemini-only cache", param="cachedContent")
    out: JSON = {"model": _bare_model(model), "messages": _gemini_messages(req)}
    _gemini_tools(req, out)
    gen = _field(req, "generationConfig")
    if gen is not None and not isinstance(gen, dict):
        raise TranslationError("generationConfig must be an object", param="generationConfig")
    gen = gen or {}
    simple = {
        "temperature": "temperature",
        "topP": "top_p",
        "maxOutputTokens": "max_completion_tokens",
        "seed": "seed",
        "presencePenalty": "presence_penalty",
        "frequencyPenalty": "frequency_penalty",
    }
    for gkey, okey in simple.items():
        v = _field(gen, gkey)
        if v is not None:
            if not _is_num(v):
                raise TranslationError(
                    f"'{gkey}' must be a number", param=f"generationConfig.{gkey}"
                )
            out[okey] = v
    count = _field(gen, "candidateCount")
    if _is_int(count) and count != 1:
        out["n"] = count
    stops = _field(gen, "stopSequences")
    if isinstance(stops, list) and stops:
        out["stop"] = stops
    if _field(gen, "responseLogprobs"):
        out["logprobs"] = True
        if _is_int(_field(gen, "logprobs")):
            out["top_logprobs"] = _field(gen, "logprobs")
    mime = _field(gen, "responseMimeType")
    schema = _openai_schema(gen, "responseJsonSchema", "responseSchema", "generationConfig")
    if mime == "application/json" or schema is not None:
        if schema is not None:
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": schema},
            }
        else:
            out["response_format"] = {"type": "json_object"}
    elif mime not in (None, "text/plain"):
        raise TranslationError(
            f"responseMimeType {mime!r} is not supported", param="generationConfig.responseMimeType"
        )
    modalities = _field(gen, "responseModalities")
    if isinstance(modalities, list) and any(str(m).upper() != "TEXT" for m in modalities):
        raise TranslationError(
            "only TEXT output is supported", param="generationConfig.responseModalities"
        )
    if _field(gen, "speechConfig") is not None:
        raise TranslationError(
            "speech output is not supported", param="generationConfig.speechConfig"
        )
    thinking = _field(gen, "thinkingConfig")
    if isinstance(thinking, dict):
        effort = _budget_to_effort(thinking)
        if effort is not None:
            out["reasoning_effort"] = effort
    # safetySettings, topK, mediaResolution, labels: no OpenAI equivalent, and none
    # changes what is asked, so they are left behind.
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# -- OpenAI response -> Gemini response (Gemini clients) ----------------------------------

_TO_GEMINI_FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def _usage_metadata(u: Usage) -> JSON:
    meta: JSON = {
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": max(u.completion_tokens - u.reasoning_tokens, 0),
        "totalTokenCount": u.total_tokens,
    }
    if u.cached_tokens:
        meta["cachedContentTokenCount"] = u.cached_tokens
    if u.reasoning_tokens:
        meta["thoughtsTokenCount"] = u.reasoning_tokens
    return meta


def _call_part(name: str, raw_args: Any, signature: str | None) -> JSON:
    try:
        args = _parse_args(raw_args, "arguments")
    except TranslationError:
        # The upstream model produced unparsable arguments; keep them visible, not lost.
        args = {"_raw_arguments": raw_args if isinstance(raw_args, str) else _dumps(raw_args)}
    part: JSON = {"functionCall": {"name": name, "args": args}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def _logprobs_to_gemini(lp: Any) -> JSON | None:
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return None
    entries = [e for e in content if isinstance(e, dict)]
    return {
        "topCandidates": [
            {
                "candidates": [
                    {"token": t.get("token"), "logProbability": t.get("logprob")}
                    for t in e.get("top_logprobs") or []
                    if isinstance(t, dict)
                ]
            }
            for e in entries
        ],
        "chosenCandidates": [
            {"token": e.get("token"), "logProbability": e.get("logprob")} for e in entries
        ],
        "logProbabilitySum": sum(e.get("logprob") or 0.0 for e in entries),
    }


def chat_to_gemini_response(resp: JSON) -> JSON:
    """OpenAI ``chat.completion`` -> Gemini ``GenerateContentResponse``."""
    if not isinstance(resp, dict):
        raise TranslationError("OpenAI response is not a JSON object")
    choices = resp.get("choices")
    if not isinstance(choices, list):
        raise TranslationError("OpenAI response has no choices list")
    candidates: list[JSON] = []
    for pos, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        msg: JSON = message if isinstance(message, dict) else {}
        parts: list[JSON] = []
        text = msg.get("content")
        if isinstance(text, list):
            text = _text_of(text, f"choices[{pos}].message.content", ("text", "refusal"))
        if isinstance(text, str) and text:
            parts.append({"text": text})
        elif isinstance(msg.get("refusal"), str) and msg["refusal"]:
            parts.append({"text": msg["refusal"]})
        calls = msg.get("tool_calls")
        for tc in calls if isinstance(calls, list) else []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                parts.append(_call_part(fn["name"], fn.get("arguments"), _signature_of(tc)))
        cand: JSON = {
            "content": {"parts": parts or [{"text": ""}], "role": "model"},
            "finishReason": _TO_GEMINI_FINISH.get(str(choice.get("finish_reason")), "STOP"),
            "index": choice["index"] if _is_int(choice.get("index")) else pos,
        }
        logprobs = _logprobs_to_gemini(choice.get("logprobs"))
        if logprobs:
            cand["logprobsResult"] = logprobs
        candidates.append(cand)
    out: JSON = {"candidates": candidates}
    usage = usage_from_openai(resp.get("usage"))
    if usage is not None:
        out["usageMetadata"] = _usage_metadata(usage)
    if isinstance(resp.get("model"), str):
        out["modelVersion"] = resp["model"]
    if isinstance(resp.get("id"), str):
        out["responseId"] = resp["id"]
    return out


@dataclass(slots=True)
class _CallBuffer:
    name: str = ""
    arguments: str = ""
    signature: str | None = None


class ChatToGeminiStream:
    """OpenAI chunks -> Gemini stream objects (send each with :func:`sse_event`)."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self._response_id: str | None = None
        self._calls: dict[int, dict[int, _CallBuffer]] = {}  # choice -> tool index -> call
        self._pending: list[JSON] = []  # finished candidates held for the usage chunk

    def _obj(self, candidates: list[JSON], usage: JSON | None = None) -> JSON:
        obj: JSON = {}
        if candidates:
            obj["candidates"] = candidates
        if usage is not None:
            obj["usageMetadata"] = usage
        obj["modelVersion"] = self.model
        if self._response_id:
            obj["responseId"] = self._response_id
        return obj

    def _final(self, idx: int, reason: str | None) -> JSON:
        bufs = self._calls.pop(idx, {})
        parts = [
            _call_part(b.name, b.arguments, b.signature) for _, b in sorted(bufs.items()) if b.name
        ]
        cand: JSON = {"content": {"parts": parts or [{"text": ""}], "role": "model"}, "index": idx}
        if reason is not None:
            cand["finishReason"] = _TO_GEMINI_FINISH.get(reason, "STOP")
        return cand

    def feed(self, chunk: JSON) -> list[JSON]:
        if not isinstance(chunk, dict):
            raise TranslationError("OpenAI stream chunk is not a JSON object")
        if self._response_id is None and isinstance(chunk.get("id"), str):
            self._response_id = chunk["id"]
        out: list[JSON] = []
        choices = chunk.get("choices")
        for pos, choice in enumerate(choices if isinstance(choices, list) else []):
            if not isinstance(choice, dict):
                continue
            idx = choice["index"] if _is_int(choice.get("index")) else pos
            raw_delta = choice.get("delta")
            delta: JSON = raw_delta if isinstance(raw_delta, dict) else {}
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str) and text:
                cand: JSON = {"content": {"parts": [{"text": text}], "role": "model"}, "index": idx}
                logprobs = _logprobs_to_gemini(choice.get("logprobs"))
                if logprobs:
                    cand["logprobsResult"] = logprobs
                out.append(self._obj([cand]))
            deltas = delta.get("tool_calls")
            for tc in deltas if isinstance(deltas, list) else []:
                if not isinstance(tc, dict):
                    continue
                ti = tc["index"] if _is_int(tc.get("index")) else 0
                buf = self._calls.setdefault(idx, {}).setdefault(ti, _CallBuffer())
                raw_fn = tc.get("function")
                fn: JSON = raw_fn if isinstance(raw_fn, dict) else {}
                if isinstance(fn.get("name"), str) and fn["name"] and not buf.name:
                    buf.name = fn["name"]
                if isinstance(fn.get("arguments"), str):
                    buf.arguments += fn["arguments"]
                buf.signature = buf.signature or _signature_of(tc)
            reason = choice.get("finish_reason")
            if reason:
                self._pending.append(self._final(idx, str(reason)))
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            out.append(self._obj(self._pending, _usage_metadata(usage)))
            self._pending = []
        return out

    def finish(self) -> list[JSON]:
        """Flush held candidates and tool calls of choices that never finished."""
        for idx in sorted(self._calls):
            self._pending.append(self._final(idx, None))
        if not self._pending:
            return []
        out = [self._obj(self._pending)]
        self._pending = []
        return out


def sse_event(obj: JSON) -> bytes:
    """One Gemini SSE event, framed the way Google frames it (CRLF, no ``[DONE]``)."""
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"


# -- embeddings -------------------------------------------------------------------------


def embeddings_to_gemini_request(req: JSON, *, upstream_model: str) -> Translated:
    """OpenAI ``/v1/embeddings`` body -> ``batchEmbedContents`` body."""
    if not isinstance(req, dict):
        raise TranslationError("request body must be a JSON object")
    inputs = req.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise TranslationError(
            "'input' must be a string or a non-empty list of strings", param="input"
        )
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise TranslationError(
                "Gemini embeds text only; token-array inputs cannot be translated",
                param=f"input[{i}]",
            )
    if len(inputs) > _MAX_EMBED_BATCH:
        raise TranslationError(
            f"Gemini embeds at most {_MAX_EMBED_BATCH} inputs per request", param="input"
        )
    fmt = req.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise TranslationError(
            "encoding_format must be 'float' or 'base64'", param="encoding_format"
        )
    dims = req.get("dimensions")
    if dims is not None and (not _is_int(dims) or dims < 1):
        raise TranslationError("'dimensions' must be a positive integer", param="dimensions")
    warnings = [
        f"'{k}' was dropped: Gemini has no equivalent."
        for k in req
        if k not in ("model", "input", "encoding_format", "dimensions")
    ]
    name = f"models/{_bare_model(upstream_model)}"
    requests: list[JSON] = []
    for text in inputs:
        r: JSON = {"model": name, "content": {"parts": [{"text": text}]}}
        if dims is not None:
            r["outputDimensionality"] = dims
        requests.append(r)
    return Translated({"requests": requests}, warnings)


def gemini_to_embeddings_response(
    resp: JSON, *, model: str, encoding_format: str | None, prompt_tokens: int
) -> JSON:
    """``batchEmbedContents`` (or ``embedContent``) response -> OpenAI embeddings list.

    ``base64`` packs little-endian float32, which is what the openai SDK (which asks
    for base64 by default) decodes. Gemini reports no usage, so ``prompt_tokens`` is the
    caller's estimate unless the response does carry ``usageMetadata``.
    """
    if not isinstance(resp, dict):
        raise TranslationError("Gemini embeddings response is not a JSON object")
    embeddings = resp.get("embeddings")
    if embeddings is None and isinstance(resp.get("embedding"), dict):
        embeddings = [resp["embedding"]]
    if not isinstance(embeddings, list):
        raise TranslationError("Gemini embeddings response has no 'embeddings' list")
    data: list[JSON] = []
    for i, emb in enumerate(embeddings):
        values = emb.get("values") if isinstance(emb, dict) else None
        if not isinstance(values, list) or not all(_is_num(v) for v in values):
            raise TranslationError(f"Gemini embedding {i} has no numeric 'values'")
        vector: Any = [float(v) for v in values]
        if encoding_format == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    usage = resp.get("usageMetadata")
    if isinstance(usage, dict) and _is_int(usage.get("promptTokenCount")):
        prompt_tokens = usage["promptTokenCount"]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


# -- errors -----------------------------------------------------------------------------


def parse_gemini_error(body: bytes) -> tuple[str, str | None]:
    """(message, status such as ``RESOURCE_EXHAUSTED``) from a Google error body.

    Streaming endpoints without ``alt=sse`` wrap the error in a JSON list; proxies in
    front of Google may answer with HTML or plain text.
    """
    text = body.decode("utf-8", "replace").strip()
    fallback = text[:500] or "empty error body from Gemini"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return fallback, None
    if isinstance(data, list):
        data = data[0] if data else None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str) and err:
        return err, None
    if not isinstance(err, dict):
        return fallback, None
    message = err.get("message")
    status = err.get("status")
    return (
        message if isinstance(message, str) and message else fallback,
        status if isinstance(status, str) and status else None,
    )
