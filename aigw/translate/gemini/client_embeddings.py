"""A Gemini client's ``embedContent`` / ``batchEmbedContents`` <-> OpenAI
``/v1/embeddings`` (the embeddings hub), for targets that embed in OpenAI's format.

:mod:`~aigw.translate.gemini.embeddings` is the other direction (an OpenAI client,
a Gemini target). Only text embeds: each request's text parts are joined with a
newline. ``outputDimensionality`` becomes ``dimensions`` (one value for the whole
call, as OpenAI takes one); ``taskType`` and ``title`` have no OpenAI equivalent and
are dropped with a warning. The answer is always asked for as floats.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from aigw.translate.common import JSON, Translated, TranslationError
from aigw.translate.gemini.shared import _is_int, _is_num

_DROPPED = ("taskType", "title")


def embed_requests(body: JSON, method: str) -> list[JSON]:
    """The per-content requests of either call (``embedContent`` is one)."""
    if method == "embedContent":
        return [body]
    reqs = body.get("requests")
    return [r for r in reqs if isinstance(r, dict)] if isinstance(reqs, list) else []


def request_text(req: JSON, where: str) -> str:
    """The text of one embed request's content; anything but text is refused."""
    content = req.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise TranslationError(
            "content: expected an object with a non-empty 'parts' array", param=f"{where}.content"
        )
    texts = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise TranslationError(
                "only text parts can be embedded by this model's provider",
                param=f"{where}.content.parts[{i}]",
            )
        texts.append(part["text"])
    return "\n".join(texts)


def gemini_embed_to_openai(body: JSON, *, method: str, upstream_model: str) -> Translated:
    """``embedContent`` or ``batchEmbedContents`` body -> OpenAI embeddings body."""
    reqs = embed_requests(body, method)
    prefix = "" if method == "embedContent" else "requests"
    inputs: list[str] = []
    dims: set[int] = set()
    dropped: set[str] = set()
    for i, req in enumerate(reqs):
        where = prefix + (f"[{i}]" if prefix else "")
        inputs.append(request_text(req, where or "content"))
        d = req.get("outputDimensionality")
        if d is not None:
            if not _is_int(d) or d < 1:
                raise TranslationError(
                    "outputDimensionality must be a positive integer",
                    param=f"{where}.outputDimensionality".lstrip("."),
                )
            dims.add(d)
        dropped.update(k for k in _DROPPED if req.get(k) is not None)
    if len(dims) > 1:
        raise TranslationError(
            "every request of one call must ask for the same outputDimensionality "
            "for this model's provider",
            param="requests",
        )
    out: JSON = {"model": upstream_model, "input": inputs, "encoding_format": "float"}
    if dims:
        out["dimensions"] = dims.pop()
    warnings = [
        f"'{k}' was dropped: OpenAI embeddings have no equivalent." for k in sorted(dropped)
    ]
    return Translated(out, warnings)


def _vector(value: Any, i: int) -> list[float]:
    if isinstance(value, str):  # base64 little-endian float32, should a server send it
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise TranslationError(f"embedding {i} is not valid base64") from None
        if len(raw) % 4:
            raise TranslationError(f"embedding {i} is not a float32 array")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(value, list) and all(_is_num(v) for v in value):
        return [float(v) for v in value]
    raise TranslationError(f"embedding {i} has no numeric values")


def openai_to_gemini_embed(resp: JSON, *, method: str, count: int) -> JSON:
    """OpenAI embeddings answer -> ``embedContent`` (``embedding``) or
    ``batchEmbedContents`` (``embeddings``) answer, in request order."""
    data = resp.get("data")
    if not isinstance(data, list) or len(data) != count:
        raise TranslationError(f"expected {count} embeddings in the answer's 'data'")
    vectors: list[list[float] | None] = [None] * count
    for pos, item in enumerate(data):
        if not isinstance(item, dict):
            raise TranslationError(f"embedding {pos} is not an object")
        index = item.get("index", pos)
        if not _is_int(index) or not 0 <= index < count or vectors[index] is not None:
            raise TranslationError(f"embedding {pos} has a bad index")
        vectors[index] = _vector(item.get("embedding"), pos)
    values = [{"values": v} for v in vectors]
    if method == "embedContent":
        return {"embedding": values[0]}
    return {"embeddings": values}
