"""The per-request context the lifecycle steps share."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aigw.errors import Wire
from aigw.limits.base import Lease
from aigw.model import KeyRecord
from aigw.usage import Usage

if TYPE_CHECKING:
    from aigw.pipeline.route import Target


_random = random.Random(int.from_bytes(os.urandom(16), "big"))


def new_request_id() -> str:
    # 96 random bits from a seeded PRNG: unique enough for an id, and no syscall per
    # request as os.urandom would cost.
    return f"req_{_random.getrandbits(96):024x}"


@dataclass(slots=True)
class Context:
    """Who is calling, what was asked, where it went and what it cost."""

    wire: Wire
    endpoint: str
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    key: KeyRecord | None = None
    body: dict[str, Any] | None = None
    model: str | None = None  # as the client asked for it
    stream: bool = False
    target: Target | None = None
    # Estimates for admission, before the provider has counted anything.
    prompt_estimate: int = 0
    prompt_bound: int = 0  # never less than the provider can bill: budgets reserve it
    max_output: int | None = None  # the client's max_tokens, if it set one
    lease: Lease | None = None
    upstream_called: bool = False  # the provider got the request (so it may bill it)
    status: int = 200
    usage: Usage | None = None
    usage_estimated: bool = False
    cost_nusd: int | None = None
    error: str | None = None
    recorded: bool = False  # its ledger row is committed or being committed
    warnings: list[str] = field(default_factory=list)

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)
