"""Model listings as each client API renders them: OpenAI's ``GET /v1/models``,
Anthropic's ``GET /v1/models`` and Gemini's ``models.list`` / ``models.get``.

Each list is paged the way its API pages (Anthropic: ``limit``, ``after_id``,
``before_id``; Gemini: ``pageSize``, ``pageToken``), so an SDK's auto-pager walks it;
OpenAI's is one page. Query values are client input: a bad one is a 400.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigw.errors import bad_request
from aigw.formats.validate import shown
from aigw.providers.base import ModelInfo

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Listed:
    """A model a key may use: its id on the gateway, the provider serving it, and what
    that provider says about the upstream model."""

    id: str
    owner: str
    info: ModelInfo


def _page_size(query: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1_000_000:
        raise bad_request(
            f"Invalid '{name}': {shown(raw)}; expected an integer from 1 to {maximum}.",
            param=name,
        )
    return min(int(raw), maximum)


# -- OpenAI --------------------------------------------------------------------------


def openai_model(m: Listed, now: int | None = None) -> JSON:
    created = m.info.created or (int(time.time()) if now is None else now)
    return {"id": m.id, "object": "model", "created": created, "owned_by": m.owner}


def openai_list(models: Sequence[Listed]) -> JSON:
    now = int(time.time())
    return {"object": "list", "data": [openai_model(m, now) for m in models]}


# -- Anthropic -----------------------------------------------------------------------


def anthropic_model(m: Listed) -> JSON:
    created = datetime.fromtimestamp(m.info.created or 0, UTC)
    return {
        "type": "model",
        "id": m.id,
        "display_name": m.info.display_name or m.id,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def anthropic_list(models: Sequence[Listed], query: Mapping[str, str]) -> JSON:
    """A page: ``limit`` (default 20, at most 1000) after ``after_id`` or before
    ``before_id``, as the Models API pages."""
    limit = _page_size(query, "limit", 20, 1000)
    ids = [m.id for m in models]
    after, before = query.get("after_id"), query.get("before_id")
    for name, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in ids:
            raise bad_request(f"Invalid '{name}': no such model in this list.", param=name)
    if before is not None:
        end = ids.index(before)
        start = max(0, end - limit)
        has_more = start > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        end = start + limit
        has_more = end < len(ids)
    page = [anthropic_model(m) for m in models[start:end]]
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


# -- Gemini --------------------------------------------------------------------------

# The methods a Gemini client can call on the gateway, by kind of model.
_SERVED = ("generateContent", "countTokens", "embedContent")
_EMBED_WORDS = ("embed", "embedding")


def _methods(info: ModelInfo) -> list[str]:
    if info.methods is not None:  # Google said: keep what the gateway serves
        return [m for m in _SERVED if m in info.methods]
    if any(w in info.id.lower() for w in _EMBED_WORDS):
        return ["embedContent", "countTokens"]
    return ["generateContent", "countTokens"]


def gemini_model(m: Listed) -> JSON:
    info = m.info
    out: JSON = {
        "name": "models/" + m.id,
        "displayName": info.display_name or m.id,
    }
    if info.description:
        out["description"] = info.description
    if info.input_token_limit is not None:
        out["inputTokenLimit"] = info.input_token_limit
    if info.output_token_limit is not None:
        out["outputTokenLimit"] = info.output_token_limit
    out["supportedGenerationMethods"] = _methods(info)
    return out


def gemini_list(models: Sequence[Listed], query: Mapping[str, str]) -> JSON:
    """A page: ``pageSize`` (default 50, at most 1000) from ``pageToken``; the token
    is the index of the page's first model."""
    size = _page_size(query, "pageSize", 50, 1000)
    token = query.get("pageToken") or "0"
    if not (token.isascii() and token.isdigit()) or int(token) > len(models):
        raise bad_request(f"Invalid 'pageToken': {shown(token)}.", param="pageToken")
    start = int(token)
    page = models[start : start + size]
    out: JSON = {"models": [gemini_model(m) for m in page]} if page else {}
    if start + size < len(models):
        out["nextPageToken"] = str(start + size)
    return out
