"""One cached answer, as the store keeps it (a leaf module: plain values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HUB = "hub"  # a chat answer in the hub format (OpenAI chat completion), re-rendered per client
RAW = "raw"  # an answer sent as it is (embeddings)


@dataclass(slots=True)
class Entry:
    key: str  # hex hash of the partition and the canonical request
    team: str  # the team whose call stored it
    endpoint: str
    model: str  # as the client asked for it (the route name)
    upstream: str | None  # provider/model that answered
    kind: str  # HUB | RAW
    body: bytes
    usage: bytes | None  # JSON token counts of the original call
    cost_nusd: int | None  # what the original call cost: what a hit saves
    created: float
    expires: float
    last_used: float
    # What a replay derived from the body (decoded, rendered), kept while the entry is
    # in memory so a hot answer is decoded and rendered once, not once per hit.
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.body) + len(self.usage or b"") + 256  # the row's other columns


@dataclass(slots=True)
class CacheStats:
    """What `aigw cache stats` shows for one team and model."""

    team: str
    model: str
    entries: int
    bytes: int
    expired: int
    hits: int  # ledger rows served from the cache (all time)
    saved_nusd: int
