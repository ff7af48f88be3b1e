"""PostgreSQL for the tests: a fresh database per test on the shared server.

The server is ``$AIGW_TEST_POSTGRES`` (default postgresql://127.0.0.1:5432/test). Each
test gets its own ``aigw_t_<random>`` database, dropped at the end: other people use
the same server, so nothing here touches a database it did not create. When the server
is not reachable the tests that need it are skipped, saying so, unless
``AIGW_REQUIRE_SERVICES=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import os
import secrets
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


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database on :data:`SERVER`, dropped afterwards."""
    await require_postgres()
    name = "aigw_t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(SERVER)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(SERVER, name)
    finally:
        admin = await asyncpg.connect(SERVER)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def backend() -> str:
    """The backend the server-level suite runs on: $AIGW_TEST_STORE (sqlite, postgres)."""
    value = os.environ.get("AIGW_TEST_STORE", "sqlite")
    if value not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"AIGW_TEST_STORE must be sqlite or postgres (got {value!r})")
    return value
