"""What the rest of the gateway needs from a limits engine: :class:`Limiter` and :class:`Lease`.

The admit step hands the engine plain values (the key, its team, a :class:`Demand`)
and gets a lease back; the pipeline settles the lease with the real usage and cost
when the call ends, or releases it on any other way out. Every method is async so
that an engine shared by several gateway processes (Redis: one atomic script per
check-and-take) satisfies the same protocol as the in-process one
(:mod:`aigw.limits.engine`). Exactness under concurrency is the implementation's
promise: two calls must never both take the last unit of a limit.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from aigw.model import KeyRecord, TeamRecord
from aigw.pricing import Price
from aigw.usage import Usage


@dataclass(frozen=True, slots=True)
class Demand:
    """What one call asks of the limits, before the provider has counted anything."""

    model: str  # as the client named it (quoted in refusals)
    provider: str  # the target provider's name
    provider_type: str
    upstream_model: str
    price: Price | None  # None: the model has no known price
    prompt_tokens: int  # the prompt estimate, taken from tokens-per-minute limits
    prompt_bound: int  # never less than the provider can bill: budgets reserve it
    max_output: int | None  # the client's max_tokens, if it set one
    ts: float  # when the call started (epoch seconds): its spend counts to that day


class Lease(Protocol):
    """What admission took for one call.

    Exactly one of :meth:`settle` and :meth:`release` takes effect; both are
    idempotent and never raise, so the pipeline may call them on every path.
    """

    def headers(self) -> dict[str, str]:
        """Rate-limit headers for the response (``x-ratelimit-*``)."""
        ...

    def upstream_slot(self, provider: str, model: str) -> AbstractAsyncContextManager[None]:
        """Wait (by the call's priority) for room under the provider's quotas."""
        ...

    async def settle(self, usage: Usage | None, cost_nusd: int | None) -> None:
        """Replace the estimates and reservations by the real usage and cost."""
        ...

    async def release(self) -> None:
        """Give back the in-flight slots and reservations without charging anything."""
        ...


class Limiter(Protocol):
    """Rate limits, concurrency, budgets and provider quotas for every call."""

    async def admit(self, key: KeyRecord, team: TeamRecord | None, demand: Demand) -> Lease:
        """Take capacity for one call, or raise GatewayError (429, 403)."""
        ...

    async def upstream_feedback(
        self, provider: str, model: str, status: int, retry_after: str | None
    ) -> None:
        """Learn from a provider's answer (a 429 pauses that model)."""
        ...

    async def start(self) -> None:
        """Load persisted state before the first call."""
        ...

    async def run(self) -> None:
        """Background work until cancelled."""
        ...

    async def close(self) -> None:
        """Write what is pending; the engine takes no calls afterwards."""
        ...
