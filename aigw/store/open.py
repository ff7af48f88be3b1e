"""Open the configured store: the one place that turns ``[store] url`` into a backend.

The server (:mod:`aigw.app`) and every CLI command open their store here, so they all
work against the same backend.
"""

from __future__ import annotations

from pathlib import Path

from aigw.config import Config
from aigw.store.base import Store


def spool_path(config: Config, state_file: Path) -> Path:
    """The serving process's ledger spool, next to the state file: one per state file
    and port, so two gateways on one machine never share one."""
    return state_file.with_name(f"{state_file.stem}-ledger-spool-{config.server.port}.jsonl")


async def open_store(config: Config, state_file: Path, *, serving: bool = False) -> Store:
    """The backend ``config.store.url`` names (empty: the SQLite ``state_file``).

    ``serving``: for ``aigw serve`` (SQLite's on-loop ledger writes; PostgreSQL's
    local spool while the server is unreachable).
    """
    url = config.store.url
    if url:
        # Imported here: the SQLite default never loads asyncpg.
        from aigw.store.postgres import PostgresStore, open_postgres
        from aigw.store.postgres.db import SERVING

        db = await open_postgres(url, application_name=SERVING if serving else "aigw")
        return PostgresStore(
            db,
            spool_path(config, state_file) if serving else None,
            synchronous=config.ledger.synchronous,
            retention=config.ledger if serving else None,
        )
    from aigw.store.sqlite import SQLiteStore
    from aigw.store.sqlite.db import open_database

    sqlite_db = await open_database(
        state_file, synchronous=config.ledger.synchronous, fast_writes=serving
    )
    return SQLiteStore(sqlite_db)
