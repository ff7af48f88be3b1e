"""The ledger's retention, run in the background by a serving gateway.

Raw rows older than ``[ledger] keep_rows`` and rollups older than ``keep_rollups`` are
deleted in small batches (SQLite: :mod:`aigw.store.sqlite.maintenance`; PostgreSQL:
:class:`aigw.store.postgres.ledger.PgLedger`), so the ledger's group commits keep
flowing while it runs. Reports and budgets read the rollups for the
pruned hours, so they stay exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from aigw.config.ledger import LedgerConfig
from aigw.store.sqlite import maintenance
from aigw.store.sqlite.db import Database

log = logging.getLogger("aigw.retention")

FIRST_DELAY = 60.0  # seconds after start: never slow the start itself
EVERY = 3600.0  # then once an hour


class Pruner(Protocol):
    """A backend's ledger retention: each call deletes in small batches and returns
    how many rows it deleted."""

    async def prune_rows(self, before: float) -> int: ...

    async def prune_rollups(self, before: float) -> int: ...

    async def expire(self, now: float) -> int:
        """Delete what the backend keeps for a fixed time only, whatever the settings
        (PostgreSQL: the ids of old group commits)."""
        ...


class SQLitePruner:
    """:class:`Pruner` on the SQLite state file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def prune_rows(self, before: float) -> int:
        return await maintenance.prune_rows(self.db, before)

    async def prune_rollups(self, before: float) -> int:
        return await maintenance.prune_rollups(self.db, before)

    async def expire(self, now: float) -> int:
        return 0  # nothing kept for a fixed time only


async def prune_once(pruner: Pruner, cfg: LedgerConfig, now: float) -> int:
    """Apply the retention once; returns how many rows (raw and rollup, and the
    backend's expiring ones) were deleted."""
    deleted = await pruner.expire(now)
    keep_rollups = cfg.keep_rollups_seconds
    if keep_rollups is not None:
        deleted += await pruner.prune_rollups(now - keep_rollups)
    keep_rows = cfg.keep_rows_seconds
    if keep_rows is not None:
        deleted += await pruner.prune_rows(now - keep_rows)
    return deleted


async def retention_forever(
    pruner: Pruner, cfg: LedgerConfig, clock: Callable[[], float] = time.time
) -> None:
    """Prune now and then until cancelled (a failure is logged and retried later)."""
    await asyncio.sleep(FIRST_DELAY)
    while True:
        try:
            deleted = await prune_once(pruner, cfg, clock())
            if deleted:
                log.info("retention: deleted %d old ledger rows and rollups", deleted)
        except Exception:
            log.warning("ledger retention failed; will retry", exc_info=True)
        await asyncio.sleep(EVERY)
