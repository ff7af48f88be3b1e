"""Teams and key limits: the store, the migration from an older file, and the CLI."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aigw.cli import app
from aigw.config import Config
from aigw.model import NO_LIMITS, Limits
from aigw.store import open_database
from aigw.store.open import open_store
from aigw.store.sqlite import keys as keystore
from aigw.store.sqlite import teams as teamstore
from aigw.store.sqlite.migrations import MIGRATIONS
from tests import statedb


def aigw(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def ok(*args: str) -> str:
    result = aigw(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


def fails(*args: str) -> str:
    result = aigw(*args)
    assert result.exit_code != 0, result.output
    return " ".join(str(result.output).split())


def js(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


# -- store -------------------------------------------------------------------------


@pytest.mark.sqlite_only("upgrades a state file written before teams existed")
async def test_migration_from_a_database_without_limits(tmp_path: Path) -> None:
    """A state file written before teams existed upgrades, and its keys keep working."""
    path = tmp_path / "old.db"
    name, sql = MIGRATIONS[0]
    with sqlite3.connect(path) as conn:
        conn.executescript(sql)
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
        conn.execute(
            "INSERT INTO keys (id, hash, prefix, team, created_at) VALUES "
            "('key_old', 'h', 'gw-abc', 'legacy', 0)"
        )
    db = await open_database(path)
    try:
        rec = await keystore.get(db, "key_old")
        assert rec.limits is NO_LIMITS and rec.team == "legacy"
        before = await keystore.generation(db)
        await teamstore.create(db, "legacy", Limits(rpm=5))
        assert await keystore.generation(db) > before  # a running server reloads
    finally:
        await db.close()


async def test_limits_round_trip_and_validation(tmp_path: Path, store_url: str) -> None:
    store = await open_store(statedb.use_store(Config(), store_url), tmp_path / "s.db")
    try:
        full = Limits(1, 2, 3, 4, "week", (50, 90), "low", ("openai/*", "fast"))
        await store.teams.create("t", full)
        assert (await store.teams.get("t")).limits == full
        _, rec = await store.keys.create(team="t", limits=Limits(alert_at=()))
        assert (await store.keys.get(rec.id)).limits.alert_at == ()  # off, not default
        with pytest.raises(Exception, match="rpm must be at least 1"):
            await store.teams.create("u", Limits(rpm=0))
        with pytest.raises(Exception, match="already exists"):
            await store.teams.create("t")
        with pytest.raises(Exception, match="not a team name"):
            await store.teams.create("two words")
        # Rotation keeps the key's limits.
        _, limited = await store.keys.create(team="t", limits=Limits(rpm=7))
        _, new, _ = await store.keys.rotate(limited.id, grace=0)
        assert new.limits == Limits(rpm=7)
    finally:
        await store.close()


# -- CLI ---------------------------------------------------------------------------


def test_teams_create_update_show_list_remove(store_url: str) -> None:
    statedb.init_home(store_url)
    team = js(
        "teams",
        "create",
        "web",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--max-parallel",
        "8",
        "--budget",
        "250.50",
        "--period",
        "week",
        "--alert-at",
        "80,50",
        "--priority",
        "HIGH",
        "--models",
        "openai/*, fast",
    )
    assert team["rpm"] == 60 and team["tpm"] == 100_000 and team["max_parallel"] == 8
    assert team["budget_nusd"] == 250_500_000_000 and team["budget_usd"] == 250.5
    assert (team["period"], team["alert_at"], team["priority"]) == ("week", [50, 80], "high")
    assert team["models"] == ["openai/*", "fast"]
    assert "created team data" in ok("teams", "create", "data", "--budget", "5")

    updated = js("teams", "update", "web", "--rpm", "none", "--alert-at", "off")
    assert updated["rpm"] is None and updated["tpm"] == 100_000 and updated["alert_at"] == []
    ok("keys", "create", "--team", "web", "--app", "site")
    ok("keys", "create", "--team", "orphans")

    listed = {t["name"]: t for t in js("teams", "list")}
    assert set(listed) == {"data", "orphans", "web"}
    assert listed["orphans"]["configured"] is False and listed["orphans"]["active_keys"] == 1
    assert listed["data"]["period"] == "month" and listed["data"]["alert_at"] == [50, 80, 100]
    table = ok("teams", "list")
    assert "no team record" in table and "$250.50/week" in table

    shown = js("teams", "show", "web")
    assert [k["app"] for k in shown["keys"]] == ["site"]
    assert shown["budgets"][0]["budget_usd"] == "250.500000000"
    assert shown["budgets"][0]["spent_nusd"] == 0
    text = ok("teams", "show", "web")
    assert "budgets, current period" in text and "$250.50" in text
    assert "no team record" in ok("teams", "show", "orphans")

    ok("teams", "remove", "data")
    assert "no team 'data'" in fails("teams", "show", "data")
    assert "no team 'nope'" in fails("teams", "update", "nope", "--rpm", "1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rpm", "0"], "--rpm: must be at least 1"),
        (["--tpm", "lots"], "--tpm: not a whole number"),
        (["--budget", "-5"], "--budget: must be a positive amount"),
        (["--budget", "1.0000000001"], "at most 9 decimal places"),
        (["--period", "year"], "--period: must be one of day, week, month"),
        (["--alert-at", "50,150"], "percents go from 1 to 100"),
        (["--priority", "urgent"], "--priority: must be one of high, normal, low"),
        (["--models", " , "], "at least one model glob"),
    ],
)
def test_bad_limit_values_are_explained(isolated_home: Path, args: list[str], message: str) -> None:
    assert message in fails("teams", "create", "t", *args)


def test_key_limits_on_create_update_and_list(store_url: str) -> None:
    statedb.init_home(store_url)
    created = js(
        "keys", "create", "--team", "t", "--rpm", "10", "--budget", "$1.5", "--models", "mock/*"
    )
    assert created["key"].startswith("gw-")
    limits = created["limits"]
    assert (limits["rpm"], limits["budget_nusd"], limits["models"]) == (
        10,
        1_500_000_000,
        ["mock/*"],
    )
    panel = ok("keys", "create", "--team", "t", "--tpm", "5000")
    assert "limits: tpm 5,000" in panel

    updated = js("keys", "update", created["id"], "--rpm", "none", "--priority", "low")
    assert updated["limits"]["rpm"] is None and updated["limits"]["priority"] == "low"
    assert updated["limits"]["budget_nusd"] == 1_500_000_000
    assert "key" not in updated  # the key itself is never shown again
    listed = {k["id"]: k for k in js("keys", "list")}
    assert listed[created["id"]]["limits"]["priority"] == "low"
    assert "budget=$1.50/month" in ok("keys", "list")
    assert "no key with id" in fails("keys", "update", "key_nope", "--rpm", "1")


def test_report_shows_budgets(store_url: str) -> None:
    statedb.init_home(store_url)
    assert "no budgets" in ok("report", "--budgets")
    ok("teams", "create", "web", "--budget", "100")
    ok("teams", "create", "free")
    key = js("keys", "create", "--team", "web", "--budget", "10", "--period", "day")

    budgets = js("report", "--budgets")
    assert [(b["scope"], b["name"]) for b in budgets] == [("team", "web"), ("key", key["id"])]
    web = budgets[0]
    assert web["budget_usd"] == "100.000000000" and web["remaining_usd"] == "100.000000000"
    assert web["spent_usd"] == "0.000000000"
    assert web["period"] == "month" and web["alerts_fired"] == [] and web["refused"] is False
    assert budgets[1]["period"] == "day" and budgets[1]["team"] == "web"
    text = ok("report")
    assert "spend by team" in text and "budgets, current period" in text
    assert "$100.00" in text and "$10.00" in text


def test_report_json_rows_carry_their_budget(store_url: str) -> None:
    statedb.init_home(store_url)
    ok("teams", "create", "web", "--budget", "1")
    spend(team="web", cost_nusd=250_000_000)
    rows = {r["name"]: r for r in js("report", "--by", "team")}
    assert rows["web"]["budget"]["spent_usd"] == "0.250000000"
    assert rows["web"]["budget"]["remaining_nusd"] == 750_000_000
    assert rows["web"]["budget"]["used_percent"] == 25.0
    app_rows = js("report", "--by", "app")
    assert "budget" not in app_rows[0]


def spend(*, team: str, cost_nusd: int) -> None:
    """A ledger row as the server would have written it."""
    from aigw.model import LedgerRow

    row = LedgerRow(
        ts=time.time(),
        request_id="req_1",
        key_id="key_1",
        team=team,
        app=None,
        endpoint="chat.completions",
        model="m",
        provider="p",
        upstream_model="m",
        status=200,
        stream=False,
        prompt_tokens=10,
        completion_tokens=10,
        cached_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        usage_estimated=False,
        cost_nusd=cost_nusd,
        latency_ms=5,
        error=None,
    )
    statedb.with_home_store(lambda store: store.ledger.append_many([row]))
