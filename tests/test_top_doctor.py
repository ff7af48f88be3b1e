"""`aigw top` and `aigw doctor` against a real gateway on a real socket.

``top`` reads the ledger the running server writes (the state file read-only, or
PostgreSQL); ``doctor`` checks
an installation and names every failure with its fix; each kind of failure is made
for real here (a missing or broken config, a corrupt or world-readable state file, no
keyring, a missing key, an unreachable or key-refusing provider, no server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import select
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import keyring
import openai
import pytest
from keyring.backends import fail
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw import paths
from aigw.app import create_app
from aigw.cli import app as cli_app
from aigw.config import Config, ProviderConfig
from aigw.model import Limits
from aigw.server import Server
from tests.conftest import listening
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI
from tests.pgserver import fresh_database

HI = [{"role": "user", "content": "hi"}]


async def aigw(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args), env={"COLUMNS": "200"})


def base_config(fake: FakeOpenAI | None = None) -> Config:
    cfg = config_mod.default_config()
    if fake is not None:
        cfg.providers["openai"] = ProviderConfig("openai", "openai", fake.base_url + "/v1")
    return cfg


async def _serve(url: str) -> Server:
    """A gateway on the home's own state (as `aigw serve` would run it): the state file,
    or the PostgreSQL database ``url``."""
    cfg = base_config()
    cfg.store.url = url
    config_mod.save(cfg, paths.resolve().config_file)
    server = await listening(create_app(cfg, paths.resolve().state_file))
    cfg.server.port = server.port
    config_mod.save(cfg, paths.resolve().config_file)  # doctor finds it there
    return server


@pytest.fixture
async def served(isolated_home: Path) -> AsyncIterator[Server]:
    """A gateway on the home's own state file."""
    server = await _serve("")
    yield server
    await server.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def served_any(request: pytest.FixtureRequest, isolated_home: Path) -> AsyncIterator[Server]:
    """A gateway on the home's state file, or on a fresh PostgreSQL database ([store]
    url): `aigw top` reads either."""
    async with contextlib.AsyncExitStack() as stack:
        url = "" if request.param == "sqlite" else await stack.enter_async_context(fresh_database())
        server = await _serve(url)
        stack.push_async_callback(server.close)
        yield server


async def make_key(server: Server, team: str, **kw: Any) -> str:
    from aigw.gateway import GATEWAY

    key, _ = await server.app[GATEWAY].store.keys.create(team=team, **kw)
    return key


def client(server: Server, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key=key, max_retries=0
    )


# -- top ---------------------------------------------------------------------------


async def test_top_shows_each_teams_calls_errors_refusals_and_spend(served_any: Server) -> None:
    served = served_any
    web = await make_key(served, "web", limits=Limits(rpm=2))
    data = await make_key(served, "data")
    async with client(served, web) as c:
        await c.chat.completions.create(model="mock/echo", messages=HI)
        await c.chat.completions.create(model="mock/echo", messages=HI)
        with pytest.raises(openai.RateLimitError):
            await c.chat.completions.create(model="mock/echo", messages=HI)
    async with client(served, data) as c:
        await c.chat.completions.create(model="mock/echo", messages=HI)
        with pytest.raises(openai.NotFoundError):
            await c.chat.completions.create(model="no-such-model", messages=HI)
    result = await aigw("top", "--json", "--window", "5m")
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    teams = {t["team"]: t for t in snap["teams"]}
    assert snap["window_seconds"] == 300
    assert teams["web"]["requests"] == 3 and teams["web"]["refused"] == 1
    assert teams["web"]["errors"] == 0
    assert teams["data"]["requests"] == 2 and teams["data"]["errors"] == 1
    assert teams["data"]["refused"] == 0
    assert teams["web"]["requests_per_s"] == pytest.approx(3 / 300, abs=1e-3)
    assert teams["web"]["tokens"] > 0
    assert teams["web"]["cost_today_usd"] == teams["web"]["cost_usd"]
    once = await aigw("top", "--once", "--window", "5m")
    assert once.exit_code == 0, once.output
    lines = once.output.splitlines()
    web_line = next(line.split() for line in lines if line.startswith("web "))
    assert web_line[2:5] == ["3", "0", "1"]  # requests, errors, refused
    assert "5 req" not in once.output and "last 300 s" in once.output


async def test_top_without_a_state_file_says_so(isolated_home: Path) -> None:
    result = await aigw("top", "--once")
    assert result.exit_code == 1
    assert "no state database yet" in result.output


async def test_top_is_live_and_quits_on_q(served_any: Server) -> None:
    """In a terminal (a pty): it refreshes, and q quits it at once."""
    served = served_any
    key = await make_key(served, "zeta-team")
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigw",
        "top",
        "--interval",
        "0.2",
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(slave)
    seen = bytearray()

    def read_until(text: bytes, limit: float) -> None:
        deadline = time.monotonic() + limit
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never shown:\n{seen.decode(errors='replace')}"
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:  # the child closed the pty
                    break

    try:
        await asyncio.to_thread(read_until, b"aigw top", 20)
        assert b"zeta-team" not in seen
        async with client(served, key) as c:
            await c.chat.completions.create(model="mock/echo", messages=HI)
        await asyncio.to_thread(read_until, b"zeta-team", 10)  # a refresh shows the new team
        os.write(master, b"q")
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)


# -- doctor ------------------------------------------------------------------------


async def doctor(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = await aigw("doctor", "--json", "--timeout", "5", *args)
    out = json.loads(result.output)
    assert out["ok"] is (result.exit_code == 0)
    checks = {c["name"]: c for c in out["checks"]}
    for c in checks.values():
        if c["status"] in ("fail", "warn"):
            assert c["fix"], c  # every problem says how to fix it
    return result.exit_code, checks


async def test_doctor_all_good(
    served: Server, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config_mod.load(paths.resolve().config_file)
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    config_mod.save(cfg, paths.resolve().config_file)
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "sk-doctor")
    code, checks = await doctor()
    assert code == 0, checks
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert checks["key:openai"]["detail"] == "a key from env AIGW_OPENAI_API_KEY"
    assert checks["provider:openai"]["status"] == "ok"
    assert fake_openai.last.headers["Authorization"] == "Bearer sk-doctor"
    assert checks["provider:mock"]["status"] == "ok"
    assert "integrity ok" in checks["state"]["detail"]
    text = await aigw("doctor", "--offline")
    assert text.exit_code == 0 and "all good" in text.output
    assert "sk-doctor" not in text.output


async def test_doctor_no_config(isolated_home: Path) -> None:
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["config"]["status"] == "fail" and "aigw init" in checks["config"]["fix"]


async def test_doctor_broken_config(isolated_home: Path) -> None:
    assert (await aigw("init")).exit_code == 0
    paths.resolve().config_file.write_text('[server]\nport = "eighty"\n')
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["config"]["status"] == "fail"
    assert "config.toml: server.port: must be a int (got 'eighty')" in checks["config"]["detail"]
    assert checks["providers"]["status"] == "skip"


async def test_doctor_corrupt_and_open_state_file(isolated_home: Path) -> None:
    assert (await aigw("init")).exit_code == 0
    state = paths.resolve().state_file
    state.chmod(0o644)
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["state.permissions"]["status"] == "fail"
    assert "chmod" in checks["state.permissions"]["fix"]
    state.chmod(0o600)
    state.write_bytes(b"this is not a database" * 100)
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["state"]["status"] == "fail" and "backup" in checks["state"]["fix"]


async def test_doctor_corrupt_page_fails_the_integrity_check(isolated_home: Path) -> None:
    import sqlite3

    assert (await aigw("init")).exit_code == 0
    state = paths.resolve().state_file
    with sqlite3.connect(state) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("CREATE TABLE filler (x TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 400)
        conn.execute("CREATE INDEX filler_x ON filler (x)")
    with sqlite3.connect(state) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    raw = bytearray(state.read_bytes())
    at = (pages - 3) * page  # an index page near the end
    raw[at + 8 : at + page] = b"\xa5" * (page - 8)
    state.write_bytes(bytes(raw))
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["state"]["status"] == "fail"


async def test_doctor_keyring_missing_is_a_warning(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await aigw("init")).exit_code == 0
    keyring.set_keyring(fail.Keyring())
    _, checks = await doctor("--offline")
    assert checks["keyring"]["status"] == "warn"
    assert "AIGW_<NAME>_API_KEY" in checks["keyring"]["fix"]


async def test_doctor_missing_key_and_unreachable_provider(isolated_home: Path) -> None:
    assert (await aigw("init")).exit_code == 0
    cfg = config_mod.load(paths.resolve().config_file)
    cfg.providers["openai"] = ProviderConfig("openai", "openai", "https://api.openai.com/v1")
    cfg.providers["local"] = ProviderConfig("local", "openai", "http://127.0.0.1:9/v1")
    config_mod.save(cfg, paths.resolve().config_file)
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["key:openai"]["status"] == "fail"
    assert "aigw providers set-key openai" in checks["key:openai"]["fix"]
    assert checks["key:local"]["status"] == "warn"  # a local server may take no key
    assert checks["providers"]["status"] == "skip"
    cfg.providers.pop("openai")
    config_mod.save(cfg, paths.resolve().config_file)
    code, checks = await doctor()
    assert code == 1
    assert checks["provider:local"]["status"] == "fail"
    assert "reachable" in checks["provider:local"]["fix"]


async def test_doctor_provider_refusing_the_key(
    isolated_home: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await aigw("init")).exit_code == 0
    config_mod.save(base_config(fake_openai), paths.resolve().config_file)
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "sk-revoked-key")
    fake_openai.then(Fail(401, "Incorrect API key provided: sk-revoked-key"))
    code, checks = await doctor()
    assert code == 1
    check = checks["provider:openai"]
    assert check["status"] == "fail" and "(401)" in check["detail"]
    assert "set-key openai" in check["fix"]
    assert "sk-revoked-key" not in json.dumps(checks)


async def test_doctor_server_not_running(isolated_home: Path) -> None:
    assert (await aigw("init")).exit_code == 0
    cfg = config_mod.load(paths.resolve().config_file)
    cfg.server.port = 9  # discard: nothing answers HTTP there
    config_mod.save(cfg, paths.resolve().config_file)
    code, checks = await doctor("--offline")
    assert code == 1
    assert checks["server"]["status"] == "fail" and "aigw serve" in checks["server"]["fix"]
    text = await aigw("doctor", "--offline")
    assert text.exit_code == 1 and "fix:" in text.output and "problem" in text.output
