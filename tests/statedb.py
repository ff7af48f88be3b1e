"""The CLI's store in tests, on whichever backend the run uses (``store_url``: "" for
the SQLite state file under ``$AIGW_HOME``, else a PostgreSQL database URL).

CLI tests call :func:`init_home` where they ran ``aigw init``: it runs it and points
config.toml's ``[store] url`` at the test's database. :func:`open_home_store` opens
the store the CLI commands open; :func:`sql` runs raw SQL on it, for tests that
inspect or tamper with rows (SQLite's ``?`` placeholders, turned into ``$1``... on
PostgreSQL). Both are plain functions usable from sync tests and, through a thread,
from async ones: ``asyncio.run`` runs on a worker thread of its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw import paths
from aigw.cli import app as cli
from aigw.config import Config
from aigw.store.base import Store
from aigw.store.open import open_store

T = TypeVar("T")


def use_store(cfg: Config, store_url: str) -> Config:
    """``cfg`` on the test's backend (unchanged for SQLite)."""
    if store_url:
        cfg.store.url = store_url
    return cfg


def point_home_at(store_url: str) -> None:
    """Set ``[store] url`` in the home's config.toml (nothing for SQLite)."""
    if not store_url:
        return
    path = paths.resolve().config_file
    config_mod.save(use_store(config_mod.load(path), store_url), path)


def init_home(store_url: str) -> str:
    """``aigw init`` in ``$AIGW_HOME``, on the test's backend; returns its output."""
    result = CliRunner().invoke(cli, ["init"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    point_home_at(store_url)
    return str(result.output)


def home_config() -> Config:
    return config_mod.load(paths.resolve().config_file)


async def open_home_store() -> Store:
    """The store the CLI opens (config.toml's ``[store] url``, or the state file)."""
    return await open_store(home_config(), paths.resolve().state_file)


def on_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own thread and loop (callable from a test
    whose loop is running: the CLI does the same through ``asyncio.run``)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        async def main() -> T:
            return await make()

        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def with_home_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the CLI's store, run ``fn`` with it, close it (on a thread of its own)."""

    async def run() -> T:
        store = await open_home_store()
        try:
            return await fn(store)
        finally:
            await store.close()

    return on_thread(run)


def pg_query(query: str) -> str:
    """SQLite's ``?`` placeholders as PostgreSQL's ``$1``, ``$2``..."""
    parts = query.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))


def sql(
    query: str, params: Sequence[Any] = (), *, script: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows of ``query`` on the CLI's store, after the statements of ``script``, all in
    one transaction (raw SQL: the tables differ between backends where the test
    says so)."""
    url = home_config().store.url
    if not url:
        conn = sqlite3.connect(paths.resolve().state_file)
        conn.row_factory = sqlite3.Row
        try:
            for statement in script:
                conn.execute(statement)
            rows = [dict(r) for r in conn.execute(query, tuple(params))] if query else []
            conn.commit()
            return rows
        finally:
            conn.close()

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                for statement in script:
                    await conn.execute(pg_query(statement))
                if not query:
                    return []
                return [dict(r) for r in await conn.fetch(pg_query(query), *params)]
        finally:
            await conn.close()

    return on_thread(run)


def execute(*statements: str) -> None:
    """Run ``statements`` on the CLI's store in one transaction."""
    sql("", script=statements)


def on_postgres() -> bool:
    return bool(home_config().store.url)


async def open_home_store_of(home: Path) -> Store:
    """The store of an `aigw serve` subprocess whose AIGW_HOME is ``home``."""
    return await open_store(config_mod.load(home / "config.toml"), home / "state.db")


async def fetchall(store: Store, query: str, params: Sequence[Any] = ()) -> list[Any]:
    """Rows of raw ``query`` (SQLite's placeholders) on ``store``, whichever its backend."""
    from aigw.store.postgres import PostgresStore
    from aigw.store.sqlite import SQLiteStore

    if isinstance(store, PostgresStore):
        return list(await store.db.fetch(pg_query(query), *params))
    assert isinstance(store, SQLiteStore)
    return list(await store.db.fetchall(query, tuple(params)))
