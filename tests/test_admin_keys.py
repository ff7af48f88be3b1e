"""Admin keys: made by `aigw keys create --admin`, they open the admin pages and make no
model calls; team keys never reach the admin pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from typer.testing import CliRunner

from aigw.cli import app
from aigw.errors import AigwError
from aigw.model import ADMIN_TEAM, Limits
from tests.conftest import RunningGateway

HI = [{"role": "user", "content": "hi"}]


def aigw(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_creates_lists_and_rotates_an_admin_key(isolated_home: Path) -> None:
    made = aigw("keys", "create", "--admin", "--name", "ops", "--json")
    assert made.exit_code == 0, made.output
    rec = json.loads(made.output)
    assert rec["admin"] is True and rec["team"] == ADMIN_TEAM and rec["name"] == "ops"
    assert rec["key"].startswith("gw-") and rec["limits"] is None
    shown = aigw("keys", "create", "--admin", "--name", "ops2")
    assert shown.exit_code == 0 and "admin key" in shown.output
    team_key = json.loads(aigw("keys", "create", "--team", "web", "--json").output)
    assert team_key["admin"] is False
    listed = json.loads(aigw("keys", "list", "--json").output)
    assert [(k["name"], k["admin"]) for k in listed] == [
        ("ops", True),
        ("ops2", True),
        (None, False),
    ]
    table = aigw("keys", "list")
    assert table.exit_code == 0 and ADMIN_TEAM in table.output
    rotated = json.loads(aigw("keys", "rotate", rec["id"], "--grace", "0s", "--json").output)
    assert rotated["admin"] is True and rotated["team"] == ADMIN_TEAM
    # Admin keys belong to no team: `aigw teams list` does not show '(admin)'.
    teams = aigw("teams", "list", "--json")
    assert teams.exit_code == 0 and ADMIN_TEAM not in teams.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--admin", "--team", "web"], "not both"),
        ([], "--team TEAM"),
        (["--team", ADMIN_TEAM], "reserved for admin keys"),
        (["--admin", "--rpm", "5"], "takes no limits"),
    ],
)
def test_cli_refuses_confused_admin_keys(
    isolated_home: Path, args: list[str], message: str
) -> None:
    result = aigw("keys", "create", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


async def test_store_keeps_admin_keys_apart(gateway: RunningGateway) -> None:
    store = gateway.gw.store
    _, rec = await store.keys.create(team="ignored", admin=True)
    assert rec.admin and rec.team == ADMIN_TEAM
    assert (await store.keys.get(rec.id)).admin
    with pytest.raises(AigwError, match="takes no limits"):
        await store.keys.set_limits(rec.id, Limits(rpm=5))
    with pytest.raises(AigwError, match="reserved"):
        await store.teams.create(ADMIN_TEAM)
    assert ADMIN_TEAM not in await store.teams.key_counts(0)


async def test_admin_key_makes_no_model_calls(gateway: RunningGateway) -> None:
    key, _ = await gateway.gw.store.keys.create(team="-", admin=True)
    async with gateway.openai(key) as client:
        with pytest.raises(openai.PermissionDeniedError) as info:
            await client.chat.completions.create(model="mock/echo", messages=HI)
        err = info.value.body
        assert isinstance(err, dict) and err["code"] == "admin_key"
        assert "admin key" in err["message"]
        with pytest.raises(openai.PermissionDeniedError):
            await client.models.list()
    # In the Anthropic envelope for an Anthropic client.
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=key, max_retries=0) as claude:
        with pytest.raises(anthropic.PermissionDeniedError) as ainfo:
            await claude.messages.create(model="mock/echo", max_tokens=5, messages=HI)
        body = ainfo.value.body
        assert isinstance(body, dict) and body["error"]["type"] == "permission_error"
    # Nothing was billed: no ledger row.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            gateway.url + "/dashboard/api/summary", headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        assert r.status == 200
        assert (await r.json())["total"]["requests"] == 0


async def test_team_key_cannot_reach_admin_endpoints(gateway: RunningGateway) -> None:
    team_key = await gateway.key()
    async with gateway.openai(team_key) as client:  # it still makes calls
        await client.chat.completions.create(model="mock/echo", messages=HI)
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {team_key}"}
        for path in ("/dashboard/api/summary", "/dashboard"):
            async with http.get(gateway.url + path, headers=auth) as r:
                assert r.status == 403, path
                assert "team key" in await r.text()
        async with http.get(gateway.url + "/dashboard/api/summary") as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
