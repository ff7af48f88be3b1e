"""Graceful shutdown of a real `aigw serve` process: SIGTERM drains the calls in flight
up to ``[server] drain_seconds``, cuts the rest and records them; SIGHUP does not kill."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from aigw import config as config_mod
from aigw.config import Config, ProviderConfig
from aigw.errors import ConfigError
from aigw.model import LedgerRow
from aigw.store.open import open_store
from tests import statedb
from tests.fakes.base import Hang, Reply
from tests.fakes.openai import FakeOpenAI
from tests.serverproc import ServerProcess, start_server

HI = [{"role": "user", "content": "Say hello to everyone in the room, please."}]


async def _serve(
    tmp_path: Path, fake: FakeOpenAI, store_url: str, drain_seconds: float = 30
) -> tuple[ServerProcess, str]:
    home = tmp_path / "srv"
    home.mkdir()
    cfg = statedb.use_store(Config(), store_url)
    cfg.server.drain_seconds = drain_seconds
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake.base_url + "/v1")
    store = await open_store(cfg, home / "state.db")
    try:
        key, _ = await store.keys.create(team="t")
    finally:
        await store.close()
    server = await start_server(home, cfg, {"AIGW_OPENAI_API_KEY": "sk-test"})
    return server, key


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def _rows(server: ServerProcess, request_id: str) -> list[LedgerRow]:
    store = await statedb.open_home_store_of(server.home)
    try:
        return await store.reports.by_request_id(request_id)
    finally:
        await store.close()


async def _exit_code(server: ServerProcess, limit: float = 15) -> int:
    return await asyncio.wait_for(server.proc.wait(), limit)


async def _refused(port: int, limit: float = 10) -> None:
    """Wait until nothing accepts connections on ``port`` any more."""
    async with asyncio.timeout(limit):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.02)


async def _open_stream(
    session: aiohttp.ClientSession, server: ServerProcess, key: str
) -> tuple[aiohttp.ClientResponse, str]:
    """Start a streamed chat call and read up to its first content chunk."""
    resp = await session.post(
        server.url + "/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": HI, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.status == 200
    while True:
        line = await resp.content.readline()
        assert line, "the stream ended before its first content chunk"
        if b'"content":"' in line and b'"content":""' not in line:
            return resp, line.decode()


async def _rest(resp: aiohttp.ClientResponse) -> str:
    """The rest of a stream, until the server ends it."""
    return (await resp.content.read()).decode()


async def test_sigterm_lets_a_stream_in_flight_finish(
    tmp_path: Path, fake_openai: FakeOpenAI, session: aiohttp.ClientSession, store_url: str
) -> None:
    fake_openai.then(Reply(text="abc" * 20, chunk_delay=0.2))  # ~4.5 s of stream
    server, key = await _serve(tmp_path, fake_openai, store_url, drain_seconds=30)
    # An idle keep-alive connection: it must be closed at once, not kept for the drain.
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", server.port)
    idle_w.write(b"GET /healthz HTTP/1.1\r\nHost: aigw\r\n\r\n")
    assert (await idle_r.readline()).startswith(b"HTTP/1.1 200")

    resp, first = await _open_stream(session, server, key)
    server.signal(signal.SIGTERM)
    await _refused(server.port)  # the listening socket closed...
    assert server.proc.returncode is None  # ...while the stream still runs
    await server.wait_output("waiting up to 30 s for 1 request in flight")
    async with asyncio.timeout(10):
        while await idle_r.read(65536):
            pass  # the rest of the healthz answer, then EOF

    body = first + await _rest(resp)
    assert body.rstrip().endswith("data: [DONE]")
    assert body.count('"content":"abc"') == 20
    assert await _exit_code(server) == 0
    idle_w.close()
    [row] = await _rows(server, resp.headers["x-request-id"])
    assert (row.status, row.usage_estimated, row.completion_tokens) == (200, False, 7)


async def test_a_stream_longer_than_the_drain_is_cut_and_recorded(
    tmp_path: Path, fake_openai: FakeOpenAI, session: aiohttp.ClientSession, store_url: str
) -> None:
    fake_openai.then(Reply(text="abcd" * 100, chunk_delay=0.1))  # ~13 s of stream
    server, key = await _serve(tmp_path, fake_openai, store_url, drain_seconds=1)
    resp, first = await _open_stream(session, server, key)
    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    rest = await _rest(resp)
    assert time.monotonic() - sent < 6  # cut at about 1 s, not at the stream's end
    assert "data: [DONE]" not in rest
    error = orjson.loads(rest.rstrip().rpartition("data: ")[2])["error"]
    assert error["code"] == "server_shutting_down"
    assert await _exit_code(server, 10) == 0
    assert "cut 1 request still running" in "".join(server.output)

    [row] = await _rows(server, resp.headers["x-request-id"])
    assert row.status == 503 and row.usage_estimated
    assert row.error is not None and "shut down" in row.error
    assert row.prompt_tokens > 0
    streamed = (first + rest).count('"content":"')
    assert row.completion_tokens > 0 and streamed < 100


async def test_a_call_hanging_at_the_provider_is_cut_and_recorded(
    tmp_path: Path, fake_openai: FakeOpenAI, session: aiohttp.ClientSession, store_url: str
) -> None:
    fake_openai.then(Hang())
    server, key = await _serve(tmp_path, fake_openai, store_url, drain_seconds=1)
    call = asyncio.ensure_future(
        session.post(
            server.url + "/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": HI},
            headers={"Authorization": f"Bearer {key}"},
        )
    )
    async with asyncio.timeout(10):
        while not fake_openai.requests:  # noqa: ASYNC110 - the fake's record of calls
            await asyncio.sleep(0.02)
    server.signal(signal.SIGTERM)
    resp = await asyncio.wait_for(call, 10)
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "server_shutting_down"
    assert await _exit_code(server, 10) == 0

    [row] = await _rows(server, resp.headers["x-request-id"])
    assert (row.status, row.usage_estimated, row.completion_tokens) == (503, True, 0)
    assert row.prompt_tokens > 0


async def test_a_second_sigterm_cuts_at_once(
    tmp_path: Path, fake_openai: FakeOpenAI, session: aiohttp.ClientSession, store_url: str
) -> None:
    fake_openai.then(Reply(text="abcd" * 100, chunk_delay=0.1))
    server, key = await _serve(tmp_path, fake_openai, store_url, drain_seconds=300)
    resp, _ = await _open_stream(session, server, key)
    server.signal(signal.SIGTERM)
    await server.wait_output("waiting up to 300 s")
    server.signal(signal.SIGTERM)
    rest = await asyncio.wait_for(_rest(resp), 10)
    assert "server_shutting_down" in rest
    assert await _exit_code(server, 10) == 0
    [row] = await _rows(server, resp.headers["x-request-id"])
    assert row.status == 503 and row.usage_estimated


async def test_sighup_does_not_stop_the_server(
    tmp_path: Path, fake_openai: FakeOpenAI, session: aiohttp.ClientSession, store_url: str
) -> None:
    server, _ = await _serve(tmp_path, fake_openai, store_url)
    config_file = server.home / "config.toml"

    async def hangup(expect: str) -> None:
        seen = len(server.output)
        server.signal(signal.SIGHUP)
        async with asyncio.timeout(10):
            while not any(expect in line for line in server.output[seen:]):
                assert server.proc.returncode is None, "".join(server.output)
                await asyncio.sleep(0.02)
        async with session.get(server.url + "/healthz") as resp:
            assert resp.status == 200

    await hangup("is unchanged")
    cfg = config_mod.load(config_file)
    cfg.server.max_request_mb = 1
    config_mod.save(cfg, config_file)
    await hangup("changed; restart aigw serve to apply it")
    config_file.write_text("[server\n")
    await hangup("keeps the configuration it started with")
    assert await server.stop() == 0


def test_drain_seconds_is_read_written_and_checked(tmp_path: Path) -> None:
    assert Config().server.drain_seconds == 30
    cfg = config_mod.parse({"server": {"drain_seconds": 2.5}})
    assert cfg.server.drain_seconds == 2.5
    config_mod.save(cfg, tmp_path / "c.toml")
    text = (tmp_path / "c.toml").read_text()
    assert "drain_seconds = 2.5" in text and "kill timeout" in text
    assert config_mod.load(tmp_path / "c.toml").server.drain_seconds == 2.5
    with pytest.raises(ConfigError, match=r"server\.drain_seconds: must be a number >= 0"):
        config_mod.parse({"server": {"drain_seconds": -1}})
