"""Constants and small helpers that more than one Gemini translator uses."""

from __future__ import annotations

from typing import Any, TypeGuard
from urllib.parse import urlsplit

import orjson

from aigw.translate.common import JSON, TranslationError


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _dumps(v: Any) -> str:
    return orjson.dumps(v).decode()


def _bare_model(model: str) -> str:
    return model.removeprefix("models/")


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


def _guess_mime(url: str, default: str = "image/jpeg") -> str:
    path = urlsplit(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _EXT_MIME.get(ext, default)


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
