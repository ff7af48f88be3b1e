"""`aigw report` money: exact decimal strings, and unknown (null) when nothing is priced."""

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal
from typing import Any

from typer.testing import CliRunner

from aigw.cli import app
from aigw.model import LedgerRow
from tests import statedb


def ok(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


def js(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def row(team: str, model: str, cost_nusd: int | None) -> LedgerRow:
    """A ledger row as the server writes it (cost None: the model had no price)."""
    return LedgerRow(
        ts=time.time(),
        request_id="req_1",
        key_id="key_1",
        team=team,
        app=None,
        endpoint="chat.completions",
        model=model,
        provider="p",
        upstream_model=model,
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


def append(*rows: LedgerRow) -> None:
    statedb.with_home_store(lambda store: store.ledger.append_many(list(rows)))


def test_a_group_of_only_unpriced_rows_has_an_unknown_cost(store_url: str) -> None:
    statedb.init_home(store_url)
    append(row("dark", "no-such-model", None), row("dark", "no-such-model", None))
    append(row("lit", "m", 1_500), row("lit", "no-such-model", None))
    by_team = {r["name"]: r for r in js("report", "--by", "team")}
    assert by_team["dark"]["cost_usd"] is None and by_team["dark"]["cost_nusd"] is None
    assert by_team["dark"]["unpriced_requests"] == 2
    # Partly priced: the priced part, with the unpriced count beside it.
    assert by_team["lit"]["cost_usd"] == "0.000001500" and by_team["lit"]["unpriced_requests"] == 1
    parsed = {r["name"]: r for r in csv.DictReader(io.StringIO(ok("report", "--csv")))}
    assert parsed["dark"]["cost_usd"] == "" and parsed["lit"]["cost_usd"] == "0.000001500"
    table = ok("report", "--by", "team")
    dark = next(line for line in table.splitlines() if "dark" in line)
    assert "unpriced" in dark and "0.00" not in dark


def test_money_above_float_precision_is_exact(store_url: str) -> None:
    statedb.init_home(store_url)
    # 2**53 + 1 nano-USD (~$9.0M) is the first integer a float cannot hold.
    big = 2**53 + 1
    assert float(big) != big
    append(row("whale", "m", big - 1), row("whale", "m", 1))
    ok("teams", "create", "whale", "--budget", "100000000")  # $100M
    (whale,) = js("report", "--by", "team")
    assert whale["cost_usd"] == "9007199.254740993"
    assert Decimal(whale["cost_usd"]) * 10**9 == big and whale["cost_nusd"] == big
    budget = whale["budget"]
    assert budget["spent_usd"] == "9007199.254740993" and budget["spent_nusd"] == big
    assert budget["budget_usd"] == "100000000.000000000"
    assert budget["remaining_usd"] == "90992800.745259007"
    (only,) = js("report", "--budgets")
    assert only["spent_usd"] == "9007199.254740993"
    (line,) = csv.DictReader(io.StringIO(ok("report", "--csv")))
    assert line["cost_usd"] == "9007199.254740993"
