"""Step 2, admit: rate limits, budgets and provider quotas.

The seam the pipeline calls; the limits engine behind it arrives with the limits
issue. Until then every call is admitted and nothing is reserved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aigw.config import Config
from aigw.pricing import PriceBook
from aigw.store import Database

if TYPE_CHECKING:
    from aigw.pipeline.context import Context
    from aigw.providers import Provider
    from aigw.store.keys import KeyRecord


class Lease:
    """What admission reserved for one call; settled when the call ends."""

    def headers(self) -> dict[str, str]:
        """Rate-limit headers for the response (x-ratelimit-*)."""
        return {}

    def settle(self, ctx: Context) -> None:
        """Replace the reservation by the real usage and cost in ``ctx`` (idempotent)."""


class Admission:
    def __init__(self, db: Database, config: Config, prices: PriceBook) -> None:
        self.db = db
        self.config = config
        self.prices = prices

    async def start(self) -> None:
        """Load persisted counters and spend."""

    async def run(self) -> None:
        """Background work (persisting counters, alerts); runs until cancelled."""

    async def close(self) -> None:
        """Persist what is pending."""

    async def admit(self, ctx: Context) -> Lease:
        """Reserve capacity for ``ctx`` or raise GatewayError(429)."""
        return Lease()

    def allows_model(self, key: KeyRecord, model: str) -> bool:
        """Whether ``key`` may use ``model`` (the key's --models globs)."""
        return True

    @asynccontextmanager
    async def upstream_slot(self, ctx: Context, provider: Provider) -> AsyncIterator[None]:
        """Wait (by priority) for the provider's quota before calling it."""
        yield

    def upstream_feedback(
        self, ctx: Context, provider: Provider, status: int, retry_after: str | None
    ) -> None:
        """Learn from the provider's answer (a 429 and its Retry-After)."""
