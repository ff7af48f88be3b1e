"""Many gateways started and stopped in one process on PostgreSQL: every connection
(the pool's and the LISTEN one) is closed at each stop, and no stop hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from aigw.app import create_app
from aigw.config import Config
from tests.conftest import listening
from tests.pgserver import fresh_database

GATEWAYS = 60


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


async def _connections(admin: asyncpg.Connection, url: str) -> list[str]:
    """The backends connected to ``url``'s database, other than ``admin``."""
    name = url.rsplit("/", 1)[-1]
    rows = await admin.fetch(
        "SELECT coalesce(query, '') FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    return [r[0] for r in rows]


async def _listening(admin: asyncpg.Connection, url: str) -> None:
    deadline = time.monotonic() + 10
    while not any("LISTEN" in q for q in await _connections(admin, url)):
        assert time.monotonic() < deadline, "the gateway never LISTENed"
        await asyncio.sleep(0.01)


async def test_sixty_gateways_start_and_stop_without_leaking_connections(
    pg_url: str, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(pg_url)
    try:
        for i in range(GATEWAYS):
            cfg = Config()
            cfg.store.url = pg_url
            server = await listening(create_app(cfg, tmp_path / "state.db"))
            try:
                # The LISTEN connection is up (so its stop is exercised too) ...
                await _listening(admin, pg_url)
                # ... and a request goes through the pool.
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{server.port}/v1/models") as r,
                ):
                    assert r.status == 401
            finally:
                async with asyncio.timeout(15):  # a hung stop fails here, not the suite
                    await server.runner.cleanup()
            # A backend leaves pg_stat_activity a moment after its client closed the
            # socket (it exits on its own time): a leak is one still there after 5 s.
            deadline = time.monotonic() + 5
            while left := await _connections(admin, pg_url):
                assert time.monotonic() < deadline, (
                    f"gateway {i}: connections still open after its stop: {left}"
                )
                await asyncio.sleep(0.01)
    finally:
        await admin.close()
