"""PostgreSQL for the tests: a fresh database per test on the shared server.

The server is ``$AIGW_TEST_POSTGRES`` (default postgresql://127.0.0.1:5432/test). Each
test gets its own ``aigw_t_<random>`` database, dropped at the end: other people use
the same server, so nothing here touches a database it did not create. The suite on
PostgreSQL creates ~1,500 of them, so two things keep that cheap: a database with aigw's
schema already migrated is copied from a per-process template (``aigw_tpl_<random>``,
migrated once), and drops run on a background thread (a drop waits on the server's
disk for ~0.2-1 s, which no test needs to wait for); the process waits for the last of
them, and drops the template, when it exits. When the server
is not reachable the tests that need it are skipped, saying so, unless
``AIGW_REQUIRE_SERVICES=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import queue
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

SERVER = os.environ.get("AIGW_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
_reachable: str | None = None  # None: not probed yet; "": reachable; else why not


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _probe() -> str:
    global _reachable
    if _reachable is None:
        try:
            conn = await asyncpg.connect(SERVER, timeout=5)
            await conn.close()
            _reachable = ""
        except Exception as exc:
            _reachable = f"{type(exc).__name__}: {exc}"
    return _reachable


async def require_postgres() -> None:
    """Skip (or, with AIGW_REQUIRE_SERVICES=1, fail) when the server is not reachable."""
    why = await _probe()
    if why:
        message = f"PostgreSQL not reachable at {SERVER} ({why}): set AIGW_TEST_POSTGRES"
        if os.environ.get("AIGW_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (AIGW_REQUIRE_SERVICES=1)")
        pytest.skip(message)


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(SERVER)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class _Dropper:
    """Drops databases on its own thread (and event loop), in the order given; at exit
    the process drops the template and waits for the thread, so no database this run
    created outlives it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.template: str | None = None
        self._thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
        self._thread.start()
        atexit.register(self._finish)

    def _run(self) -> None:
        while (name := self._queue.get()) is not None:
            try:
                asyncio.run(_drop(name))
            except Exception as exc:  # left behind, named aigw_t_*: say so, go on
                print(f"pgserver: could not drop {name}: {exc}")

    def drop(self, name: str) -> None:
        self._queue.put(name)

    def _finish(self) -> None:
        if self.template is not None:
            self._queue.put(self.template)
        self._queue.put(None)
        self._thread.join()


_dropper: _Dropper | None = None


def _the_dropper() -> _Dropper:
    global _dropper
    if _dropper is None:
        _dropper = _Dropper()
    return _dropper


async def _migrated_template(admin: asyncpg.Connection) -> str:
    """This process's template database with aigw's schema (created on first use)."""
    dropper = _the_dropper()
    if dropper.template is None:
        from aigw.store.postgres import open_postgres

        name = "aigw_tpl_" + secrets.token_hex(6)
        await admin.execute(f'CREATE DATABASE "{name}"')
        dropper.template = name
        pool = await open_postgres(with_database(SERVER, name))
        await pool.close()
    return dropper.template


@asynccontextmanager
async def fresh_database(*, migrated: bool = False) -> AsyncIterator[str]:
    """The URL of a new database on :data:`SERVER`, dropped afterwards: empty, or
    ``migrated`` (aigw's schema, as a store opened on it would create it)."""
    await require_postgres()
    name = "aigw_t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(SERVER)
    try:
        if migrated:
            template = await _migrated_template(admin)
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(SERVER, name)
    finally:
        _the_dropper().drop(name)


def backend() -> str:
    """The backend the server-level suite runs on: $AIGW_TEST_STORE (sqlite, postgres)."""
    value = os.environ.get("AIGW_TEST_STORE", "sqlite")
    if value not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"AIGW_TEST_STORE must be sqlite or postgres (got {value!r})")
    return value
