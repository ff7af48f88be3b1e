"""Connections that never finish their headers or body are closed ([server]
header_timeout and body_timeout), and the server keeps answering normal requests."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from aigw import config as config_mod
from aigw.config import Config
from aigw.errors import ConfigError
from tests.conftest import RunningGateway, StartGateway

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 1.0
# Generous room for a loaded machine; what matters is that the socket closes at all.
MARGIN = 3.0


@pytest.fixture
async def strict(start_gateway: StartGateway) -> RunningGateway:
    cfg = Config()
    cfg.server.header_timeout = HEADER_TIMEOUT
    cfg.server.body_timeout = BODY_TIMEOUT
    return await start_gateway(providers={"mock": ("mock", "")}, config=cfg)


async def until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: float
) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did;
    fails if it is still open after ``limit`` seconds."""
    started = time.monotonic()
    data = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                data += chunk
    finally:
        writer.close()
    return data, time.monotonic() - started


async def normal_request(gw: RunningGateway, key: str) -> int:
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            gw.url + "/v1/chat/completions",
            json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        await r.read()
        return r.status


async def test_half_sent_headers_are_closed_after_header_timeout(strict: RunningGateway) -> None:
    key = await strict.key()
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthoriz")
    await writer.drain()
    # Meanwhile a normal client is served.
    assert await normal_request(strict, key) == 200
    data, took = await until_closed(reader, writer, HEADER_TIMEOUT + MARGIN)
    assert data == b""
    assert took >= HEADER_TIMEOUT * 0.8
    assert await normal_request(strict, key) == 200


async def test_headers_trickled_byte_by_byte_do_not_keep_the_connection(
    strict: RunningGateway,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(trickle())
    try:
        data, took = await until_closed(reader, writer, HEADER_TIMEOUT + MARGIN)
    finally:
        task.cancel()
    assert data == b""
    assert took < HEADER_TIMEOUT + MARGIN


async def test_an_idle_connection_is_closed(strict: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    data, _ = await until_closed(reader, writer, HEADER_TIMEOUT + MARGIN)
    assert data == b""


async def test_half_sent_body_gets_408_and_is_closed(strict: RunningGateway) -> None:
    key = await strict.key()
    body = b'{"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}'
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[: len(body) // 2]
    )
    await writer.drain()
    # Body timeout, then at most as long again draining the unread rest.
    data, took = await until_closed(reader, writer, 2 * BODY_TIMEOUT + MARGIN)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"request_timeout" in data
    assert took >= BODY_TIMEOUT * 0.8
    assert await normal_request(strict, key) == 200


async def test_unauthenticated_half_body_is_closed_too(strict: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    await writer.drain()
    data, _ = await until_closed(reader, writer, 2 * BODY_TIMEOUT + MARGIN)
    assert data.startswith(b"HTTP/1.1 401 "), data[:200]


def test_timeouts_are_read_written_and_checked() -> None:
    cfg = config_mod.parse({"server": {"header_timeout": 5, "body_timeout": 30.5}})
    assert (cfg.server.header_timeout, cfg.server.body_timeout) == (5.0, 30.5)
    text = config_mod.render(Config())
    assert "header_timeout = 10.0" in text and "body_timeout = 60.0" in text
    assert "header_timeout seconds" in text
    with pytest.raises(ConfigError, match=r"server\.body_timeout: must be a number"):
        config_mod.parse({"server": {"body_timeout": 0}})
