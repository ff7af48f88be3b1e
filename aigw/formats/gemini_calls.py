"""Gemini's model methods besides generateContent, as clients send them:
``:countTokens``, ``:embedContent`` and ``:batchEmbedContents``.

countTokens takes ``{"contents": [...]}`` or a whole ``{"generateContentRequest":
{...}}``; either is validated as a generateContent request and becomes the call's
body, so the count step can pass it through or translate it like a chat call.
"""

from __future__ import annotations

from typing import Any

from aigw.errors import bad_request
from aigw.formats import Call, gemini
from aigw.formats.validate import describe, model_name, shown
from aigw.tokens import bound, estimate

# batchEmbedContents refuses more requests than this (the real API's limit).
MAX_BATCH = 100
EMBED_METHODS = ("embedContent", "batchEmbedContents")


def parse_count_tokens(body: Any, *, model: str) -> Call:
    if not isinstance(body, dict):
        raise bad_request(f"Invalid JSON payload: expected an object, got {describe(body)}.")
    inner = body.get("generateContentRequest")
    if inner is None:
        return gemini.parse(body, model=model, stream=False)
    if not isinstance(inner, dict):
        raise bad_request(
            f"generateContentRequest: expected an object, got {describe(inner)}.",
            param="generateContentRequest",
        )
    if "contents" in body:
        raise bad_request(
            "Send either contents or generateContentRequest, not both.", param="contents"
        )
    return gemini.parse(inner, model=model, stream=False)


def _content(req: Any, where: str) -> None:
    if not isinstance(req, dict):
        raise bad_request(f"{where}: expected an object, got {describe(req)}.", param=where)
    content = req.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise bad_request(
            f"{where}.content: expected an object with a non-empty 'parts' array.",
            param=f"{where}.content",
        )
    dims = req.get("outputDimensionality")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise bad_request(
            f"{where}.outputDimensionality: expected a positive integer, got {shown(dims)}.",
            param=f"{where}.outputDimensionality",
        )


def parse_embed(body: Any, *, model: str, method: str) -> Call:
    """An embedContent or batchEmbedContents request. In a batch, each request may
    name its model, which must be the one in the URL (as Google requires)."""
    model = model_name(model)
    if not isinstance(body, dict):
        raise bad_request(f"Invalid JSON payload: expected an object, got {describe(body)}.")
    if method == "embedContent":
        _content(body, "request")
        texts = [body.get("content")]
    else:
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            raise bad_request(
                f"requests: expected a non-empty array, got {describe(reqs)}.", param="requests"
            )
        if len(reqs) > MAX_BATCH:
            raise bad_request(
                f"requests: at most {MAX_BATCH} requests can be in one batch.", param="requests"
            )
        for i, req in enumerate(reqs):
            _content(req, f"requests[{i}]")
            named = req.get("model")
            if named is not None and (
                not isinstance(named, str) or named.removeprefix("models/") != model
            ):
                raise bad_request(
                    f"requests[{i}].model: must be the model the URL names (models/{model}).",
                    param=f"requests[{i}].model",
                )
        texts = [r.get("content") for r in reqs]
    return Call(model, False, body, False, estimate(texts), 0, prompt_bound=bound(texts))
