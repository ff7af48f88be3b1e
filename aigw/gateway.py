"""The services a running gateway holds, built once at start-up (a leaf module).

Only the composition root (:mod:`aigw.app`), the CLI and the tests use
:class:`Gateway`; the pipeline's steps receive the collaborators they need instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from aigw.config import Config
from aigw.directory import Directory
from aigw.drain import Drain
from aigw.limits.engine import LocalLimiter
from aigw.limits.permissions import ModelPermissions
from aigw.model import LedgerRecord
from aigw.observe.metrics import Metrics
from aigw.pipeline.account import Accountant
from aigw.pricing import PriceBook
from aigw.providers import Provider
from aigw.providers.catalog import ModelLists
from aigw.routing.health import LocalHealth
from aigw.routing.targets import Router
from aigw.store import Database
from aigw.store.base import Store
from aigw.store.writer import GroupWriter


@dataclass(eq=False)
class Gateway:
    """Everything a running gateway holds."""

    config: Config
    db: Database | None  # the SQLite state file; None on PostgreSQL
    store: Store
    directory: Directory
    writer: GroupWriter[LedgerRecord]
    accountant: Accountant
    prices: PriceBook
    session: aiohttp.ClientSession
    providers: dict[str, Provider]
    router: Router
    limiter: LocalLimiter
    permissions: ModelPermissions
    health: LocalHealth
    model_lists: ModelLists | None = None
    metrics: Metrics = field(default_factory=Metrics)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    drain: Drain = field(default_factory=Drain)

    @property
    def max_body(self) -> int:
        return int(self.config.server.max_request_mb * 1024 * 1024)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a background task and keep a reference to it (no orphan tasks)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def stop(self, *tasks: asyncio.Task[None]) -> None:
        """Cancel ``tasks`` and wait until each has finished (awaited, not orphaned)."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


GATEWAY = web.AppKey("gateway", Gateway)
