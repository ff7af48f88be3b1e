"""Helpers for the Redis counters tests: the shared test server, private servers, and
a counting fake upstream.

Redis at ``AIGW_TEST_REDIS`` (default redis://127.0.0.1:6379/0) is shared with other
people's tests: every test uses its own random key prefix and deletes only its own
keys, never FLUSHDB. Unreachable: the test is skipped, saying why; with
``AIGW_REQUIRE_SERVICES=1`` (CI) it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.conftest import listening, until

REDIS_URL = os.environ.get("AIGW_TEST_REDIS", "redis://127.0.0.1:6379/0")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_services() -> bool:
    return os.environ.get("AIGW_REQUIRE_SERVICES", "") == "1"


def unavailable(why: str) -> None:
    """Skip the test, or fail it when CI requires the services."""
    if require_services():
        pytest.fail(f"{why} (AIGW_REQUIRE_SERVICES=1: the Redis tests must run)")
    pytest.skip(f"{why}; set AIGW_TEST_REDIS to a Redis 7 server to run the counters tests")


async def shared_redis() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        unavailable(f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__})")
    return client


def new_prefix() -> str:
    return f"aigwtest:{secrets.token_hex(6)}:"


async def drop_prefix(client: aioredis.Redis, prefix: str) -> None:
    """Delete this test's keys (and only them)."""
    async for k in client.scan_iter(match=prefix + "*", count=500):
        await client.delete(k)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own (for restarts), on a free port, no persistence."""

    def __init__(self, password: str = "") -> None:
        self.password = password  # set: the server requires it (requirepass)
        if not Path(REDIS_SERVER).exists():
            unavailable(f"no redis-server at {REDIS_SERVER}")
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *[REDIS_SERVER, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            *(["--requirepass", self.password] if self.password else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=0.5, password=self.password or None
        )
        try:

            async def up() -> bool:
                try:
                    return bool(await client.ping())
                except Exception:
                    return False

            for _ in range(200):
                if await up():
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("private redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


class Upstream:
    """An OpenAI-compatible upstream that counts the calls in flight at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        # Set: every call is answered with this status (and headers) instead.
        self.fail_status = 0
        self.fail_headers: dict[str, str] = {}
        self.inflight = 0
        self.peak = 0
        self.calls = 0
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls += 1
        if self.fail_status:
            return web.json_response(
                {"error": {"message": "upstream trouble", "type": "server_error"}},
                status=self.fail_status,
                headers=self.fail_headers,
            )
        # Billed for max_tokens when the client sets it (budget tests), else 7.
        out = int(body.get("max_completion_tokens") or body.get("max_tokens") or 7)
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.inflight -= 1
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model", "gpt-4o-mini"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": out, "total_tokens": 11 + out},
            },
            dumps=lambda o: orjson.dumps(o).decode(),
        )

    async def start(self) -> Upstream:
        server = await listening(self.app)
        self.runner, self.port = server.runner, server.port
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@asynccontextmanager
async def prefixed() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """The shared Redis and a fresh key prefix, its keys deleted afterwards."""
    client = await shared_redis()
    prefix = new_prefix()
    try:
        yield client, prefix
    finally:
        await drop_prefix(client, prefix)
        await client.aclose()


__all__ = ["PrivateRedis", "Upstream", "prefixed", "until"]
