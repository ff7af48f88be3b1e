"""The state file over months: pruning, the retention task, backup, restore, check."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aigw import paths, retention
from aigw.app import create_app
from aigw.config import Config, ProviderConfig
from aigw.gateway import GATEWAY
from aigw.server import Server
from aigw.store import open_database
from aigw.store.sqlite import keys as keystore
from aigw.store.sqlite import ledger, limits
from aigw.store.sqlite.rollups import DAY, HOUR, floor_to
from tests.conftest import listening
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


def old_rows(n: int, *, days_ago: float, seed: int = 3) -> list[Any]:
    """``n`` rows spread over the two days ending ``days_ago`` days back."""
    rnd = random.Random(seed)
    end = time.time() - days_ago * DAY
    return [random_row(rnd, end - rnd.random() * 2 * DAY) for _ in range(n)]


async def fill(rows: list[Any]) -> None:
    db = await open_database(paths.resolve().state_file)
    try:
        for i in range(0, len(rows), 50):
            await ledger.append_many(db, rows[i : i + 50])
    finally:
        await db.close()


async def totals() -> dict[str, Any]:
    """Every report grouping over all time, and spend over whole days (budgets)."""
    db = await open_database(paths.resolve().state_file)
    try:
        out: dict[str, Any] = {}
        for by in ("team", "key", "model", "day"):
            out[by] = await ledger.summarize(db, by=by, since=None, until=None)
        start = floor_to(time.time(), DAY) - 400 * DAY
        spend = await limits.spend_between(db, start, start + 800 * DAY)
        out["spend"] = sorted(spend, key=lambda s: (str(s.team), str(s.key_id)))
        return out
    finally:
        await db.close()


async def raw_count() -> int:
    db = await open_database(paths.resolve().state_file)
    try:
        row = await db.fetchone("SELECT COUNT(*) FROM ledger")
        return int(row[0]) if row else 0
    finally:
        await db.close()


async def test_prune_keeps_reports_and_budgets_exact(isolated_home: Path) -> None:
    await ok("init")
    old = old_rows(300, days_ago=100)
    await fill(old + old_rows(100, days_ago=1, seed=4))
    # A start just after an old row, inside its hour.
    start = next(r.ts + 1e-3 for r in old if floor_to(r.ts + 1e-3, HOUR) == floor_to(r.ts, HOUR))
    hour = floor_to(start, HOUR)
    db = await open_database(paths.resolve().state_file)
    try:
        assert await ledger.summarize(db, by="day", since=start, until=None) != (
            await ledger.summarize(db, by="day", since=hour, until=None)
        )
    finally:
        await db.close()
    before = await totals()
    dry = json.loads(await ok("ledger", "prune", "--before", "30d", "--dry-run", "--json"))
    assert dry["rows"] == 300 and dry["dry_run"] is True
    assert await raw_count() == 400
    done = json.loads(await ok("ledger", "prune", "--before", "30d", "--json"))
    assert done["rows"] == 300
    assert await raw_count() == 100
    assert await totals() == before
    # A range starting inside a pruned hour takes that whole hour from the rollups.
    db = await open_database(paths.resolve().state_file)
    try:
        assert await ledger.summarize(db, by="day", since=start, until=None) == (
            await ledger.summarize(db, by="day", since=hour, until=None)
        )
    finally:
        await db.close()
    assert "deleted 0 ledger row(s)" in await ok("ledger", "prune", "--before", "30d")
    result = await cli("ledger", "prune", "--before", "2999-01-01")
    assert result.exit_code == 1 and "future" in result.output


async def test_check_finds_a_rollup_that_disagrees(isolated_home: Path) -> None:
    await ok("init")
    await fill(old_rows(200, days_ago=1))
    report = json.loads(await ok("ledger", "check", "--json"))
    assert report["ok"] is True and report["quick_check"] == ["ok"]
    assert report["rows"]["ledger"] == 200 and report["hours_checked"] > 0
    assert sum(d["requests"] for d in report["requests_per_day"]) == 200
    assert "all match" in await ok("ledger", "check")
    with sqlite3.connect(paths.resolve().state_file) as conn:
        conn.execute("UPDATE rollup_hour SET cost_nusd = cost_nusd + 1")
    result = await cli("ledger", "check", "--json", "--sample", "1000")
    assert result.exit_code == 1
    assert json.loads(result.output)["mismatches"]


def gateway_config() -> Config:
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig(name="mock", type="mock", base_url="")
    return cfg


@pytest.fixture
async def serving(isolated_home: Path) -> AsyncIterator[Server]:
    await ok("init")
    server = await listening(create_app(gateway_config(), paths.resolve().state_file))
    try:
        yield server
    finally:
        await server.close()


async def test_retention_task_prunes_in_the_background(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ok("init")
    await fill(old_rows(300, days_ago=100) + old_rows(50, days_ago=1, seed=9))
    before = await totals()
    monkeypatch.setattr(retention, "FIRST_DELAY", 0.0)
    cfg = gateway_config()
    cfg.ledger.keep_rows = "30d"
    server = await listening(create_app(cfg, paths.resolve().state_file))
    try:
        db = server.app[GATEWAY].db
        for _ in range(500):  # wait on the condition: the old rows are gone
            row = await db.fetchone("SELECT COUNT(*) FROM ledger")
            if row is not None and row[0] == 50:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the retention task did not prune")
    finally:
        await server.close()  # the task is cancelled and awaited, not orphaned
    assert await totals() == before


async def test_backup_while_serving_and_restore_refused_while_serving(
    serving: Server, tmp_path: Path
) -> None:
    gw = serving.app[GATEWAY]
    key, _ = await keystore.create(gw.db, team="t")
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
    backup = tmp_path / "backup.db"
    try:
        result = await cli("backup", str(backup), "--json")
    finally:
        stop.set()
        sent = sum(await asyncio.gather(*loaders))
    await client.close()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bytes"] == backup.stat().st_size
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        rolled = conn.execute("SELECT SUM(requests) FROM rollup_day").fetchone()[0]
    assert 20 <= rows <= 20 + sent and rolled == rows  # a consistent snapshot
    # A file that exists is never overwritten.
    again = await cli("backup", str(backup))
    assert again.exit_code == 1 and "already exists" in again.output
    # Restore refuses while the server holds the state, and changes nothing.
    live = await raw_count()
    refused = await cli("restore", str(backup), "--yes")
    assert refused.exit_code == 1 and "running aigw server" in refused.output
    assert await raw_count() == live > rows


async def test_restore_after_the_server_stopped(isolated_home: Path, tmp_path: Path) -> None:
    await ok("init")
    await fill(old_rows(40, days_ago=1))
    backup = tmp_path / "b.db"
    await ok("backup", str(backup))
    await fill(old_rows(10, days_ago=1, seed=11))
    assert await raw_count() == 50
    result = await cli("restore", str(backup))  # asks first; no answer means no
    assert result.exit_code == 1 and await raw_count() == 50
    assert "restored" in await ok("restore", str(backup), "--yes")
    assert await raw_count() == 40
    report = json.loads(await ok("ledger", "check", "--json"))
    assert report["ok"] and report["rows"]["ledger"] == 40
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    bad = await cli("restore", str(junk), "--yes")
    assert bad.exit_code == 1 and "not an aigw state file" in bad.output
    # A server starts on the restored file.
    server = await listening(create_app(gateway_config(), paths.resolve().state_file))
    await server.close()
