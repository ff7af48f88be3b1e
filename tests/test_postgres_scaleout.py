"""Three `aigw serve` processes on one PostgreSQL (and Redis): keys reach all of them
within a second, every answered call lands in the ledger exactly once (also across
kill -9), and a PostgreSQL outage under load is bridged by each process's local spool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from aigw.config import Config, ProviderConfig
from aigw.store.postgres import PostgresStore, open_postgres
from tests.fakes.openai import FakeOpenAI
from tests.pgserver import fresh_database, require_postgres
from tests.redis_kit import REDIS_URL, prefixed
from tests.serverproc import ServerProcess, start_server

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]
ENV = {"AIGW_OPENAI_API_KEY": "sk-test"}


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


def _config(fake: FakeOpenAI, url: str) -> Config:
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake.base_url + "/v1")
    cfg.store.url = url
    return cfg


async def _gateways(tmp_path: Path, cfg: Config, n: int) -> list[ServerProcess]:
    servers = []
    for i in range(n):
        home = tmp_path / f"gw{i}"
        home.mkdir()
        servers.append(await start_server(home, cfg, ENV))
    return servers


async def _cli(home: Path, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigw",
        *args,
        "--json",
        env={**os.environ, "AIGW_HOME": str(home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def _status(http: aiohttp.ClientSession, server: ServerProcess, key: str) -> int:
    async with http.post(
        server.url + "/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": HI},
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        await resp.read()
        return resp.status


async def _within(seconds: float, check: object, what: str) -> float:
    """Seconds until the async ``check()`` is true; fails after ``seconds``."""
    t0 = time.monotonic()
    while not await check():  # type: ignore[operator]
        assert time.monotonic() - t0 < seconds, f"not within {seconds:g} s: {what}"
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def _ledger_ids(url: str) -> Counter[str]:
    store = PostgresStore(await open_postgres(url))
    try:
        return Counter(await store.queries.request_ids())
    finally:
        await store.close()


async def test_keys_reach_every_process_and_rows_land_once(
    tmp_path: Path, fake_openai: FakeOpenAI, pg_url: str
) -> None:
    servers = await _gateways(tmp_path, _config(fake_openai, pg_url), 3)
    a, b, _ = servers
    try:
        created = await _cli(a.home, "keys", "create", "--team", "t")
        key = str(created["key"])
        async with aiohttp.ClientSession() as http:
            for server in servers:
                await _within(
                    1.0, lambda s=server: _ok(http, s, key), "a new key accepted by every process"
                )
            ids: list[str] = []
            for i in range(60):
                server = servers[i % 3]
                async with http.post(
                    server.url + "/v1/chat/completions",
                    json={"model": "openai/gpt-4o-mini", "messages": HI},
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    assert resp.status == 200
                    ids.append(resp.headers["x-request-id"])
            await _cli(b.home, "keys", "revoke", str(created["id"]))
            for server in servers:
                await _within(
                    1.0,
                    lambda s=server: _refused(http, s, key),
                    "a revoked key refused by every process",
                )
        recorded = await _ledger_ids(pg_url)
        assert all(recorded[i] == 1 for i in ids), "a row missing or doubled"
        # The CLI reads the same database: both processes' rows, the probes included.
        (row,) = await _cli(a.home, "report", "--by", "team")
        assert row["name"] == "t" and row["requests"] == sum(recorded.values()) >= 60
    finally:
        for server in servers:
            await server.stop()


async def _ok(http: aiohttp.ClientSession, server: ServerProcess, key: str) -> bool:
    return await _status(http, server, key) == 200


async def _refused(http: aiohttp.ClientSession, server: ServerProcess, key: str) -> bool:
    return await _status(http, server, key) == 401


async def test_kill_9_of_one_process_loses_no_answered_row(
    tmp_path: Path, fake_openai: FakeOpenAI, pg_url: str
) -> None:
    servers = await _gateways(tmp_path, _config(fake_openai, pg_url), 3)
    a = servers[0]
    key = str((await _cli(a.home, "keys", "create", "--team", "load"))["key"])
    completed: list[str] = []

    async def worker(n: int, server: ServerProcess) -> None:
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=10
        ) as client:
            while True:
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="openai/gpt-4o-mini", messages=HI, stream=n % 2 == 0
                    )
                    parsed = raw.parse()
                    if isinstance(parsed, openai.AsyncStream):
                        async for _ in parsed:
                            pass
                except (openai.APIError, OSError):
                    return  # the server is gone
                completed.append(raw.headers["x-request-id"])
                if server is not a and len(completed) > 600:
                    return

    try:
        workers = [asyncio.create_task(worker(i, servers[i % 3])) for i in range(18)]
        while len(completed) < 300:  # noqa: ASYNC110 - polling a counter the workers bump
            await asyncio.sleep(0.02)
        a.kill9()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 30)
        await a.proc.wait()
        assert a.proc.returncode == -9
    finally:
        for server in servers:
            await server.stop()
    recorded = await _ledger_ids(pg_url)
    assert len(completed) >= 300
    missing = [i for i in completed if recorded[i] != 1]
    assert not missing, f"{len(missing)} of {len(completed)} answered calls not recorded once"


# -- a private PostgreSQL we may stop -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivatePostgres:
    """A PostgreSQL instance of our own (initdb in a temp dir), run as ``nobody``:
    postgres refuses to run as root."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql://aigw@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *args], capture_output=True, timeout=60, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.decode()}")

    def init(self) -> None:
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.data, "nobody", "nogroup")
        self._run("initdb", "-D", str(self.data), "-U", "aigw", "-A", "trust")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-l", f"{self.data}/log", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        if os.environ.get("AIGW_REQUIRE_SERVICES") == "1":
            pytest.fail("initdb/pg_ctl not found (AIGW_REQUIRE_SERVICES=1)")
        pytest.skip("initdb/pg_ctl not found: the outage test runs its own PostgreSQL")
    # Not under pytest's tmp_path: ``nobody`` must reach it (pytest's is owner-only).
    root = Path(tempfile.mkdtemp(prefix="aigw-pg-"))
    root.chmod(0o755)
    try:
        pg = PrivatePostgres(root)
        pg.init()
        pg.start()
        try:
            yield pg
        finally:
            with contextlib.suppress(RuntimeError):
                pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the shared Redis, its keys deleted afterwards."""
    async with prefixed() as (_, prefix):
        yield prefix


async def test_postgres_outage_is_spooled_and_replayed(
    tmp_path: Path, fake_openai: FakeOpenAI, private_postgres: PrivatePostgres, prefix: str
) -> None:
    await require_postgres()  # the same tooling; keeps the skip message in one place
    pg = private_postgres
    cfg = _config(fake_openai, pg.url)
    cfg.counters.url = REDIS_URL
    cfg.counters.prefix = prefix
    cfg.counters.on_unavailable = "local"
    # PostgreSQL is stopped with -m immediate (a crash of the server): only "full"
    # promises that a commit survives that; "normal" may lose the last few hundred ms.
    cfg.ledger.synchronous = "full"
    servers = await _gateways(tmp_path, cfg, 3)
    answered: list[str] = []
    failed: list[str] = []
    try:
        created = await _cli(servers[0].home, "keys", "create", "--team", "t", "--rpm", "100000")
        key = str(created["key"])
        async with aiohttp.ClientSession() as http:

            async def call(server: ServerProcess) -> None:
                async with http.post(
                    server.url + "/v1/chat/completions",
                    json={"model": "openai/gpt-4o-mini", "messages": HI},
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    if resp.status == 200:
                        answered.append(resp.headers["x-request-id"])
                    else:
                        failed.append(f"{resp.status} {await resp.text()}")

            async def ready(server: ServerProcess) -> dict[str, object]:
                async with http.get(server.url + "/readyz") as resp:
                    doc: dict[str, object] = await resp.json()
                    return doc

            stop = asyncio.Event()

            async def worker(server: ServerProcess) -> None:
                while not stop.is_set():
                    await call(server)

            workers = [asyncio.create_task(worker(servers[i % 3])) for i in range(6)]
            try:
                while len(answered) < 60:  # noqa: ASYNC110 - polling a list the workers fill
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(pg.stop)
                before = len(answered)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 10:  # ten seconds of load with no database
                    await asyncio.sleep(0.1)
                    assert not failed, failed[:3]
                during = len(answered) - before
                docs = [await ready(s) for s in servers]
                for doc in docs:
                    assert doc["status"] == "degraded" and int(str(doc["spooled"])) > 0, doc
                await asyncio.to_thread(pg.start)

                async def replayed() -> bool:
                    docs = [await ready(s) for s in servers]
                    return [d["spooled"] for d in docs] == [0, 0, 0]

                await _within(30, replayed, "every spool replayed")
                settled = len(answered)
                while len(answered) < settled + 30:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            finally:
                stop.set()
                await asyncio.gather(*workers)
            assert not failed, failed[:3]
            assert during > 100, during  # served all along, not just a trickle
            for server in servers:
                assert (await ready(server))["status"] == "ready"
                # The outage is one warning each, not a traceback per poll.
                await server.wait_output("gateway keys and teams reloaded again")
                out = "".join(server.output)
                assert out.count("could not reload gateway keys and teams") == 1, out
        recorded = await _ledger_ids(pg.url)
        assert all(recorded[i] == 1 for i in answered)
        assert sum(recorded.values()) == len(answered)
        # Report totals match the client's count.
        (row,) = await _cli(servers[0].home, "report", "--by", "team")
        assert row["name"] == "t" and row["requests"] == len(answered)
    finally:
        for server in servers:
            await server.stop()
