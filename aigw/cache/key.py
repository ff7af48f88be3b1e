"""Which calls the cache may answer, and the key of one.

The key is a SHA-256 of the canonical request: the endpoint (so an answer is only ever
replayed to a client of the API it was asked through), the route name the client
asked for, and the request body as the upstream would see it (after scrubbing) with
its keys sorted, without the fields that only say how to deliver the answer
(``stream``, ``stream_options``). JSON whitespace and key order do not matter.
Prefixed by the partition: the team, or ``*`` when ``[cache] shared``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# The endpoints whose answers are cached (as the ledger names them). The Responses API
# is not: its calls refer to server-side state (previous_response_id, store).
CACHEABLE = frozenset({"chat.completions", "messages", "generateContent", "embeddings"})
_DELIVERY = frozenset({"stream", "stream_options"})
SHARED = "*"


def cache_key(partition: str, endpoint: str, model: str, body: dict[str, Any]) -> str:
    canon = {k: v for k, v in body.items() if k not in _DELIVERY}
    data = orjson.dumps(
        [partition, endpoint, model, canon], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.sha256(data).hexdigest()


def _zero(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def deterministic(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether the call asks for a repeatable answer: temperature 0 or a seed (and
    embeddings, which always are)."""
    if endpoint == "embeddings":
        return True
    if endpoint == "generateContent":
        gen = body.get("generationConfig")
        if not isinstance(gen, dict):
            return False
        return _zero(gen.get("temperature")) or gen.get("seed") is not None
    return _zero(body.get("temperature")) or body.get("seed") is not None


def replayable(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether an answer can be replayed faithfully. Anthropic extended thinking is
    not: the hub format does not carry thinking signatures, which a client sends back
    on its next turn."""
    if endpoint == "messages":
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
            return False
    return True
