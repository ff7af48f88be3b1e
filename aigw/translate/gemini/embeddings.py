"""OpenAI ``/v1/embeddings`` (the hub) <-> Gemini ``batchEmbedContents``."""

from __future__ import annotations

import base64
import struct
from typing import Any

from aigw.translate.common import JSON, Translated, TranslationError
from aigw.translate.gemini.shared import _bare_model, _is_int, _is_num

_MAX_EMBED_BATCH = 100  # batchEmbedContents rejects larger batches.


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
