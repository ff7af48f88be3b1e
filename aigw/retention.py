"""The ledger's retention, run in the background by a serving gateway.

Raw rows older than ``[ledger] keep_rows`` and rollups older than ``keep_rollups`` are
deleted in small batches (:mod:`aigw.store.sqlite.maintenance`), so the ledger's group
commits keep flowing while it runs. Reports and budgets read the rollups for the
pruned hours, so they stay exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aigw.config.ledger import LedgerConfig
from aigw.store.sqlite import maintenance
from aigw.store.sqlite.db import Database

log = logging.getLogger("aigw.retention")

FIRST_DELAY = 60.0  # seconds after start: never slow the start itself
EVERY = 3600.0  # then once an hour


async def prune_once(db: Database, cfg: LedgerConfig, now: float) -> int:
    """Apply the retention once; returns how many rows (raw and rollup) were deleted."""
    deleted = 0
    keep_rollups = cfg.keep_rollups_seconds
    if keep_rollups is not None:
        deleted += await maintenance.prune_rollups(db, now - keep_rollups)
    keep_rows = cfg.keep_rows_seconds
    if keep_rows is not None:
        deleted += await maintenance.prune_rows(db, now - keep_rows)
    return deleted


async def retention_forever(
    db: Database, cfg: LedgerConfig, clock: Callable[[], float] = time.time
) -> None:
    """Prune now and then until cancelled (a failure is logged and retried later)."""
    await asyncio.sleep(FIRST_DELAY)
    while True:
        try:
            deleted = await prune_once(db, cfg, clock())
            if deleted:
                log.info("retention: deleted %d old ledger rows and rollups", deleted)
        except Exception:
            log.warning("ledger retention failed; will retry", exc_info=True)
        await asyncio.sleep(EVERY)
