"""The state over months: pruning, the retention task, backup, restore, check; each on
the SQLite state file and on PostgreSQL ([store] url)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw import paths, retention
from aigw.app import create_app
from aigw.config import Config, ProviderConfig
from aigw.gateway import GATEWAY
from aigw.server import Server
from aigw.store.base import Store
from aigw.store.open import open_store
from aigw.store.postgres import PostgresStore
from aigw.store.sqlite import SQLiteStore
from aigw.store.sqlite.rollups import DAY, HOUR, floor_to
from tests.conftest import listening
from tests.pgserver import fresh_database
from tests.test_rollups import random_row

HI = [{"role": "user", "content": "hi"}]


async def cli(*args: str) -> Any:
    """The CLI in a thread (it runs its own event loop), as a user would run it."""
    return await asyncio.to_thread(CliRunner().invoke, _app(), list(args), env={"COLUMNS": "200"})


def _app() -> Any:
    from aigw.cli import app

    return app


async def ok(*args: str) -> str:
    result = await cli(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, isolated_home: Path) -> AsyncIterator[str]:
    """An initialised home whose state is the SQLite file ("") or, with [store] url, a
    fresh PostgreSQL database (its URL): every command here works on both."""
    await ok("init")
    if request.param == "sqlite":
        yield ""
        return
    async with fresh_database() as url:
        cfg = config_mod.load(paths.resolve().config_file)
        cfg.store.url = url
        config_mod.save(cfg, paths.resolve().config_file)
        yield url


@contextlib.asynccontextmanager
async def opened() -> AsyncIterator[Store]:
    """The configured store, as the CLI opens it."""
    store = await open_store(
        config_mod.load(paths.resolve().config_file), paths.resolve().state_file
    )
    try:
        yield store
    finally:
        await store.close()


async def sql(store: Store, query: str, *params: Any) -> list[Any]:
    """Rows of ``query`` ($1, $2... on PostgreSQL, ? on SQLite) on either backend."""
    if isinstance(store, PostgresStore):
        return list(await store.db.fetch(query, *params))
    assert isinstance(store, SQLiteStore)
    return list(await store.db.fetchall(query, params))


def old_rows(n: int, *, days_ago: float, seed: int = 3) -> list[Any]:
    """``n`` rows spread over the two days ending ``days_ago`` days back."""
    rnd = random.Random(seed)
    end = time.time() - days_ago * DAY
    return [random_row(rnd, end - rnd.random() * 2 * DAY) for _ in range(n)]


async def fill(rows: list[Any]) -> None:
    async with opened() as store:
        for i in range(0, len(rows), 50):
            await store.ledger.append_many(rows[i : i + 50])


async def totals() -> dict[str, Any]:
    """Every report grouping over all time, and spend over whole days (budgets)."""
    async with opened() as store:
        out: dict[str, Any] = {}
        for by in ("team", "key", "model", "day"):
            out[by] = await store.reports.summarize(by=by, since=None, until=None)
        start = floor_to(time.time(), DAY) - 400 * DAY
        spend = await store.limit_state.spend_between(start, start + 800 * DAY)
        out["spend"] = sorted(spend, key=lambda s: (str(s.team), str(s.key_id)))
        return out


async def raw_count() -> int:
    async with opened() as store:
        return int((await sql(store, "SELECT COUNT(*) FROM ledger"))[0][0])


async def summarize_since(since: float) -> Any:
    async with opened() as store:
        return await store.reports.summarize(by="day", since=since, until=None)


async def test_prune_keeps_reports_and_budgets_exact(backend: str) -> None:
    old = old_rows(300, days_ago=100)
    await fill(old + old_rows(100, days_ago=1, seed=4))
    # A start just after an old row, inside its hour.
    start = next(r.ts + 1e-3 for r in old if floor_to(r.ts + 1e-3, HOUR) == floor_to(r.ts, HOUR))
    hour = floor_to(start, HOUR)
    assert await summarize_since(start) != await summarize_since(hour)
    before = await totals()
    dry = json.loads(await ok("ledger", "prune", "--before", "30d", "--dry-run", "--json"))
    assert dry["rows"] == 300 and dry["dry_run"] is True
    assert await raw_count() == 400
    done = json.loads(await ok("ledger", "prune", "--before", "30d", "--json"))
    assert done["rows"] == 300
    assert await raw_count() == 100
    assert await totals() == before
    # A range starting inside a pruned hour takes that whole hour from the rollups.
    assert await summarize_since(start) == await summarize_since(hour)
    assert "deleted 0 ledger row(s)" in await ok("ledger", "prune", "--before", "30d")
    result = await cli("ledger", "prune", "--before", "2999-01-01")
    assert result.exit_code == 1 and "future" in result.output


async def test_check_finds_a_rollup_that_disagrees(backend: str) -> None:
    await fill(old_rows(200, days_ago=1))
    report = json.loads(await ok("ledger", "check", "--json"))
    assert report["ok"] is True
    if backend:
        assert report["backend"] == "postgresql" and report["quick_check"] is None
        assert report["wal_bytes"] is None and report["database_bytes"] >= report["file_bytes"]
        assert report["rows"]["ledger_batches"] == 4
    else:
        assert report["backend"] == "sqlite" and report["quick_check"] == ["ok"]
        assert report["database_bytes"] is None
    assert report["file_bytes"] > 0 and report["bytes_per_ledger_row"] > 0
    assert report["rows"]["ledger"] == 200 and report["hours_checked"] > 0
    assert sum(d["requests"] for d in report["requests_per_day"]) == 200
    text = await ok("ledger", "check")
    assert "all match" in text and "integrity" in text and " ok" in text
    async with opened() as store:
        await sql(store, "UPDATE rollup_hour SET cost_nusd = cost_nusd + 1")
    result = await cli("ledger", "check", "--json", "--sample", "1000")
    assert result.exit_code == 1
    assert json.loads(result.output)["mismatches"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_check_on_postgres_sees_an_audit_head_behind(backend: str) -> None:
    await ok("keys", "create", "--team", "t")
    async with opened() as store:
        await sql(store, "UPDATE audit_head SET seq = seq - 1")
    result = await cli("ledger", "check")
    assert result.exit_code == 1 and "audit" in result.output and "1 problem" in result.output


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def gateway_config(url: str = "") -> Config:
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig(name="mock", type="mock", base_url="")
    cfg.store.url = url
    return cfg


@pytest.fixture
async def serving(backend: str) -> AsyncIterator[Server]:
    server = await listening(create_app(gateway_config(backend), paths.resolve().state_file))
    try:
        yield server
    finally:
        await server.close()


async def test_retention_task_prunes_in_the_background(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(old_rows(300, days_ago=100) + old_rows(50, days_ago=1, seed=9))
    before = await totals()
    if backend:  # the ids of group commits older than a week go too
        async with opened() as store:
            await sql(store, "UPDATE ledger_batches SET applied_at = applied_at - 8 * 86400")
    monkeypatch.setattr(retention, "FIRST_DELAY", 0.0)
    cfg = gateway_config(backend)
    cfg.ledger.keep_rows = "30d"
    server = await listening(create_app(cfg, paths.resolve().state_file))
    try:
        store = server.app[GATEWAY].store
        for _ in range(500):  # wait on the condition: the old rows are gone
            if (await sql(store, "SELECT COUNT(*) FROM ledger"))[0][0] == 50:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the retention task did not prune")
        if backend:
            for _ in range(500):
                if (await sql(store, "SELECT COUNT(*) FROM ledger_batches"))[0][0] == 0:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the retention task did not expire the old batch ids")
    finally:
        await server.close()  # the task is cancelled and awaited, not orphaned
    assert await totals() == before


async def test_backup_while_serving_and_restore_refused_while_serving(
    serving: Server, backend: str, tmp_path: Path
) -> None:
    gw = serving.app[GATEWAY]
    key, _ = await gw.store.keys.create(team="t")
    import openai

    client = openai.AsyncOpenAI(base_url=serving.url + "/v1", api_key=key, max_retries=0)
    stop = asyncio.Event()

    async def load() -> int:
        n = 0
        while not stop.is_set():
            await client.chat.completions.create(model="mock/echo", messages=HI)  # type: ignore[arg-type]
            n += 1
        return n

    for _ in range(20):
        await client.chat.completions.create(model="mock/echo", messages=HI)  # type: ignore[arg-type]
    loaders = [asyncio.create_task(load()) for _ in range(4)]
    backup = tmp_path / "backups" / "backup.db"
    backup.parent.mkdir()
    try:
        result = await cli("backup", str(backup), "--json")
    finally:
        stop.set()
        sent = sum(await asyncio.gather(*loaders))
    await client.close()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bytes"] == backup.stat().st_size
    assert backup.stat().st_mode & 0o077 == 0  # owner-only, like the state it holds
    assert names_in(backup.parent) == ["backup.db"]  # no partial file left beside it
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        rolled = conn.execute("SELECT SUM(requests) FROM rollup_day").fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM audit WHERE kind = 'proxy'").fetchone()[0]
    assert 20 <= rows <= 20 + sent and rolled == rows  # a consistent snapshot
    assert events == rows  # each call's audit event, in the same snapshot
    # A file that exists is never overwritten.
    again = await cli("backup", str(backup))
    assert again.exit_code == 1 and "already exists" in again.output
    # Restore refuses while the server holds the state, and changes nothing.
    live = await raw_count()
    refused = await cli("restore", str(backup), "--yes")
    assert refused.exit_code == 1 and "running aigw server" in refused.output
    assert await raw_count() == live > rows


async def test_restore_after_the_server_stopped(backend: str, tmp_path: Path) -> None:
    await ok("keys", "create", "--team", "kept")  # an audit event, sealed
    await fill(old_rows(40, days_ago=1))
    backup = tmp_path / "b.db"
    await ok("backup", str(backup))
    await fill(old_rows(10, days_ago=1, seed=11))
    await ok("keys", "create", "--team", "gone")
    assert await raw_count() == 50
    before = await totals()
    result = await cli("restore", str(backup))  # asks first; no answer means no
    assert result.exit_code == 1 and await raw_count() == 50
    assert "restored" in await ok("restore", str(backup), "--yes")
    assert await raw_count() == 40
    assert await totals() != before
    teams = {k["team"] for k in json.loads(await ok("keys", "list", "--json"))}
    assert teams == {"kept"}
    verified = json.loads(await ok("audit", "verify", "--json"))
    assert verified["ok"] and verified["checked"] == 1, verified
    report = json.loads(await ok("ledger", "check", "--json"))
    assert report["ok"] and report["rows"]["ledger"] == 40
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    bad = await cli("restore", str(junk), "--yes")
    assert bad.exit_code == 1 and "not an aigw state file" in bad.output
    assert await raw_count() == 40  # a refused restore changes nothing
    # A server starts on the restored state, and the chain goes on from its head.
    server = await listening(create_app(gateway_config(backend), paths.resolve().state_file))
    await server.close()
    await ok("keys", "create", "--team", "after")
    verified = json.loads(await ok("audit", "verify", "--json"))
    assert verified["ok"] and verified["checked"] >= 2, verified
