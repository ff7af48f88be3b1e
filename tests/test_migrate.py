"""`aigw migrate --to`: the SQLite state copied into PostgreSQL, exactly, rerunnable;
then every CLI command works against PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw import doctor, paths
from aigw.audit import admin_event
from aigw.cli import app
from aigw.model import AlertRow, Limits
from aigw.store.open import open_store
from aigw.store.postgres import PostgresStore, open_postgres
from aigw.store.sqlite import SQLiteStore, maintenance
from tests.pgserver import fresh_database
from tests.test_rollups import T0, random_row, random_ts

BY = ("team", "app", "key", "model", "provider", "day")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


async def _fill(state: Path) -> None:
    store = await open_store(config_mod.Config(), state)
    assert isinstance(store, SQLiteStore)
    try:
        await store.teams.create("a", Limits(budget_nusd=10**12))
        await store.keys.create(team="a", limits=Limits(rpm=5))
        await store.keys.create(team="b")
        rnd = random.Random(7)
        for _ in range(10):
            await store.ledger.append_many(
                [random_row(rnd, random_ts(rnd)) for _ in range(rnd.randrange(1, 60))]
            )
        await store.limit_state.save_alerts([AlertRow("team", "a", "month:x", "80", T0, 8, 10)])
        await store.audit.append([admin_event("test", "x")])
        # Some raw rows pruned: their hours live on in the rollups only.
        await maintenance.prune_rows(store.db, T0 + 3600 * 5)
    finally:
        await store.close()


async def _reports(store: object) -> list[object]:
    out: list[object] = []
    for by in BY:
        out.append(await store.reports.summarize(by=by, since=None, until=None))  # type: ignore[attr-defined]
        out.append(await store.reports.summarize(by=by, since=T0 + 1800, until=T0 + 2 * 86400))  # type: ignore[attr-defined]
    return out


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


async def test_migrate_copies_everything_once(isolated_home: Path, pg_url: str) -> None:
    state = paths.resolve().state_file
    await _fill(state)

    code, out = await asyncio.to_thread(_invoke, "migrate", "--to", pg_url, "--json")
    assert code == 0, out
    first = json.loads(out)["tables"]
    assert first["keys"] == {"read": 2, "copied": 2}
    assert first["ledger"]["copied"] == first["ledger"]["read"] > 0
    assert first["audit"]["copied"] == first["audit"]["read"] > 0
    code, out = await asyncio.to_thread(_invoke, "migrate", "--to", pg_url, "--json")
    assert code == 0, out
    again = json.loads(out)["tables"]
    assert all(c["copied"] == 0 for c in again.values()), again

    lite = await open_store(config_mod.Config(), state)
    pg = PostgresStore(await open_postgres(pg_url))
    try:
        assert await _reports(pg) == await _reports(lite)
        assert await pg.keys.list_all() == await lite.keys.list_all()
        assert await pg.teams.list_all() == await lite.teams.list_all()
        assert await pg.audit.head() == await lite.audit.head()
        assert await pg.limit_state.load_alerts(["month:x"]) == await lite.limit_state.load_alerts(
            ["month:x"]
        )
    finally:
        await lite.close()
        await pg.close()

    # Pointed at PostgreSQL, the CLI reads and writes there.
    cfg = config_mod.load(paths.resolve().config_file)
    cfg.store.url = pg_url
    config_mod.save(cfg, paths.resolve().config_file)
    code, out = await asyncio.to_thread(_invoke, "keys", "create", "--team", "c", "--json")
    assert code == 0, out
    code, out = await asyncio.to_thread(_invoke, "keys", "list", "--json")
    assert code == 0 and len(json.loads(out)) == 3, out
    code, out = await asyncio.to_thread(_invoke, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"], out
    code, out = await asyncio.to_thread(_invoke, "logs", "--json", "--limit", "1")
    assert code == 0 and "keys.create" in out, out
    checks = await asyncio.to_thread(doctor.run, offline=True, wait=0.5)
    (state_check,) = [c for c in checks if c.name == "state"]
    assert (state_check.status, state_check.detail) == ("ok", "PostgreSQL: ok")
    code, out = await asyncio.to_thread(_invoke, "top", "--once")
    assert code == 0 and "aigw top" in out and "127.0.0.1" in out, out
    code, out = await asyncio.to_thread(_invoke, "ledger", "check", "--json")
    assert code == 0 and json.loads(out)["backend"] == "postgresql", out


def test_migrate_errors_are_friendly(isolated_home: Path) -> None:
    code, out = _invoke("migrate", "--to", "postgresql://u:secret@db/x")
    assert code != 0 and "password" in out and "Traceback" not in out
    code, out = _invoke("migrate", "--to", "postgresql://127.0.0.1:1/x")
    assert code != 0 and "no state database" in out
    code, out = _invoke("init")
    assert code == 0, out
    code, out = _invoke("migrate", "--to", "postgresql://127.0.0.1:1/x")
    assert code != 0 and "cannot open the PostgreSQL store" in out and "Traceback" not in out


async def _request_ids(store: object) -> list[str]:
    if isinstance(store, PostgresStore):
        return sorted(set(await store.queries.request_ids()))
    assert isinstance(store, SQLiteStore)
    return sorted(r[0] for r in await store.db.fetchall("SELECT DISTINCT request_id FROM ledger"))


async def _same_state(a: object, b: object) -> None:
    """Two stores hold the same keys, teams, alerts, reports, ledger rows and audit."""
    assert await _reports(a) == await _reports(b)
    for attr in ("keys", "teams"):
        assert await getattr(a, attr).list_all() == await getattr(b, attr).list_all()
    assert await a.audit.head() == await b.audit.head()  # type: ignore[attr-defined]
    alerts = ["month:x"]
    assert await a.limit_state.load_alerts(alerts) == await b.limit_state.load_alerts(alerts)  # type: ignore[attr-defined]
    ids = await _request_ids(a)
    assert ids == await _request_ids(b)
    for rid in ids:
        assert await a.reports.by_request_id(rid) == await b.reports.by_request_id(rid)  # type: ignore[attr-defined]


async def test_a_backup_on_postgres_restores_on_either_backend(
    isolated_home: Path, pg_url: str, tmp_path: Path
) -> None:
    """`aigw backup` on PostgreSQL writes the SQLite state file format: it holds exactly
    the state (pruned hours in the rollups, sealed audit events), and `aigw restore`
    takes it on a fresh PostgreSQL database and on SQLite alike."""
    state = paths.resolve().state_file
    await _fill(state)
    code, out = await asyncio.to_thread(_invoke, "migrate", "--to", pg_url, "--json")
    assert code == 0, out
    config_file = paths.resolve().config_file
    cfg = config_mod.load(config_file)
    cfg.store.url = pg_url
    config_mod.save(cfg, config_file)
    code, out = await asyncio.to_thread(_invoke, "keys", "create", "--team", "after", "--json")
    assert code == 0, out
    backup = tmp_path / "from-pg.db"
    code, out = await asyncio.to_thread(_invoke, "backup", str(backup), "--json")
    assert code == 0 and json.loads(out)["bytes"] == backup.stat().st_size, out

    source = PostgresStore(await open_postgres(pg_url))
    copy = await open_store(config_mod.Config(), tmp_path / "copy-of-backup.db")
    await copy.close()
    (tmp_path / "copy-of-backup.db").write_bytes(backup.read_bytes())
    copy = await open_store(config_mod.Config(), tmp_path / "copy-of-backup.db")
    try:
        await _same_state(source, copy)
    finally:
        await copy.close()

    # Restored on another PostgreSQL database: the same state, and the chain verifies.
    async with fresh_database() as other:
        cfg.store.url = other
        config_mod.save(cfg, config_file)
        code, out = await asyncio.to_thread(_invoke, "restore", str(backup), "--yes")
        assert code == 0 and "restored" in out, out
        restored = PostgresStore(await open_postgres(other))
        try:
            await _same_state(source, restored)
        finally:
            await restored.close()
        code, out = await asyncio.to_thread(_invoke, "audit", "verify", "--json")
        assert code == 0 and json.loads(out)["ok"], out

    # And on SQLite.
    cfg.store.url = ""
    config_mod.save(cfg, config_file)
    code, out = await asyncio.to_thread(_invoke, "restore", str(backup), "--yes")
    assert code == 0, out
    lite = await open_store(config_mod.Config(), state)
    try:
        await _same_state(source, lite)
    finally:
        await lite.close()
        await source.close()
    code, out = await asyncio.to_thread(_invoke, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"], out
