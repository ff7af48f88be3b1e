"""Gemini request from a client -> OpenAI chat completions request (the hub).

* **Schema dialect.** A Gemini client's OpenAPI-style ``parameters`` / ``responseSchema``
  (upper-case types, ``nullable``, int64-as-string bounds) is converted to JSON Schema;
  ``parametersJsonSchema`` / ``responseJsonSchema`` pass as they are.
* **Thinking.** ``thinkingLevel`` or ``thinkingBudget`` becomes ``reasoning_effort``; a
  positive budget also travels as the hub's ``thinking`` extension
  (``{"type": "enabled", "budget_tokens": N}``) so Anthropic gets the number itself.
* **Snake case.** Google's JSON parser accepts ``system_instruction``,
  ``inline_data``... as well as camelCase, and its curl docs use them, so client
  requests are read in either spelling.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aigw.translate.common import JSON, TranslationError, effort_for_budget
from aigw.translate.gemini.shared import _bare_model, _dumps, _guess_mime, _is_int, _is_num


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
            out[key] = int(val) if isinstance(val, str) and val.isascii() and val.isdigit() else val
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
    return effort_for_budget(budget)


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
        budget = _field(thinking, "thinkingBudget")
        if effort not in (None, "none") and _is_int(budget) and budget > 0:
            # The number itself, for targets that take one (Anthropic's budget_tokens).
            out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    # safetySettings, topK, mediaResolution, labels: no OpenAI equivalent, and none
    # changes what is asked, so they are left behind.
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out
