"""/dashboard over HTTP: login (form -> cookie, or Bearer), who is refused, the assets,
and the summary API whose numbers equal `aigw report --json` for the same range."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from aigw.app import create_app
from aigw.cli import app as cli_app
from aigw.config import Config, ModelConfig, ProviderConfig
from aigw.model import Limits
from aigw.web.auth import COOKIE
from tests.conftest import RunningGateway, listening
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def home(isolated_home: Path) -> Path:
    isolated_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return isolated_home


@pytest.fixture
async def home_gateway(home: Path, fake_openai: FakeOpenAI) -> AsyncIterator[RunningGateway]:
    """A gateway on the state file the CLI opens (AIGW_HOME/state.db)."""
    cfg = Config()
    cfg.routing.max_attempts = 1
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    cfg.models["fast"] = ModelConfig("fast", "openai", "gpt-4o-mini")
    state = home / "state.db"
    server = await listening(create_app(cfg, state))
    yield RunningGateway(server.app, server.runner, server.port, state)
    await server.runner.cleanup()


async def admin_key(gw: RunningGateway) -> str:
    key, _ = await gw.gw.store.keys.create(team="-", name="ops", admin=True)
    return key


async def traffic(gw: RunningGateway, fake_openai: FakeOpenAI) -> None:
    """Calls of two teams: priced, unpriced (mock), an upstream error, a refusal."""
    await gw.gw.store.teams.create("web", Limits(budget_nusd=2 * 10**9, alert_at=(50, 90)))
    await gw.gw.store.teams.create("batch", Limits(rpm=2))
    web, batch = await gw.key(team="web"), await gw.key(team="batch", app="etl")
    async with gw.openai(web) as client:
        for _ in range(3):
            await client.chat.completions.create(model="fast", messages=HI)
        fake_openai.script.append(Fail(400, "bad request"))
        with pytest.raises(Exception):  # noqa: B017 - any error: the upstream's 400
            await client.chat.completions.create(model="fast", messages=HI)
    async with gw.openai(batch) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
        await client.chat.completions.create(model="fast", messages=HI)
        with pytest.raises(Exception):  # noqa: B017 - the rpm refusal
            await client.chat.completions.create(model="fast", messages=HI)


async def get_json(url: str, headers: dict[str, str]) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        return await r.json()


async def cli_json(*args: str) -> Any:
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, list(args), env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


async def test_summary_equals_aigw_report(
    home_gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    gw = home_gateway
    await traffic(gw, fake_openai)
    key = await admin_key(gw)
    auth = {"Authorization": f"Bearer {key}"}
    data = await get_json(gw.url + "/dashboard/api/summary?range=24h", auth)
    window = ("--since", data["since"], "--until", data["until"])
    teams = await cli_json("report", "--by", "team", "--json", *window)
    assert [{k: v for k, v in r.items() if k != "live"} for r in data["teams"]] == teams
    assert {r["name"] for r in teams} == {"web", "batch"}
    assert data["models"] == await cli_json("report", "--by", "model", "--json", *window)
    assert data["providers"] == await cli_json("report", "--by", "provider", "--json", *window)
    budgets = await cli_json("report", "--budgets", "--json")
    assert [{k: v for k, v in b.items() if k != "thresholds"} for b in data["budgets"]] == [
        b for b in budgets if b["scope"] == "team"
    ]
    assert data["budgets"][0]["thresholds"] == [50, 90]
    web = next(r for r in data["teams"] if r["name"] == "web")
    batch = next(r for r in data["teams"] if r["name"] == "batch")
    assert web["requests"] == 4 and web["errors"] == 1
    assert web["live"]["error_rate"] == 0.25
    assert web["live"]["p50_ms"] is not None and web["live"]["p95_ms"] >= web["live"]["p50_ms"]
    assert batch["live"]["limit_refusals"] == 1 and web["live"]["limit_refusals"] == 0
    assert data["total"]["requests"] == 7
    everyone = data["total"]["live"]
    assert everyone["limit_refusals"] == 1 and everyone["error_rate"] == round(2 / 7, 4)
    assert everyone["p95_ms"] >= max(web["live"]["p95_ms"], batch["live"]["p95_ms"])
    assert data["total"]["cost_nusd"] == web["cost_nusd"] + batch["cost_nusd"]
    assert sum(p["requests"] for p in data["series"]["points"]) == 7
    assert [t["target"] for t in data["health"]["targets"]] == ["mock/echo", "openai/gpt-4o-mini"]
    assert data["team_names"] == ["batch", "web"]
    # One team: its own top models and series.
    only = await get_json(gw.url + "/dashboard/api/summary?range=1h&team=batch", auth)
    assert [(m["name"], m["requests"]) for m in only["models"]] == [("fast", 2), ("mock/echo", 1)]
    assert sum(p["requests"] for p in only["series"]["points"]) == 3


async def post_login(
    http: aiohttp.ClientSession, url: str, key: str, origin: str | None = None
) -> aiohttp.ClientResponse:
    headers = {"Origin": origin} if origin else {}
    return await http.post(
        url + "/dashboard/login", data={"key": key}, headers=headers, allow_redirects=False
    )


async def test_login_form_cookie_and_logout(gateway: RunningGateway) -> None:
    key = await admin_key(gateway)
    team_key = await gateway.key()
    url = gateway.url
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(url + "/dashboard") as r:  # no credentials: the form
            assert r.status == 200
            page = await r.text()
            assert 'action="/dashboard/login"' in page and 'type="password"' in page
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"
        async with await post_login(http, url, "gw-wrong") as r:
            assert r.status == 401 and "Invalid key" in await r.text()
        async with await post_login(http, url, team_key) as r:
            assert r.status == 403 and "team key" in await r.text()
        async with await post_login(http, url, key, origin="http://evil.example") as r:
            assert r.status == 403
        assert not jar.filter_cookies(url)
        async with await post_login(http, url, key, origin=url) as r:
            assert r.status == 303 and r.headers["Location"] == "/dashboard"
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert key not in cookie
        async with http.get(url + "/dashboard") as r:
            assert r.status == 200 and 'id="teams"' in await r.text()
        async with http.get(url + "/dashboard/api/summary") as r:
            assert r.status == 200
        async with http.post(url + "/dashboard/logout", allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(url + "/dashboard/api/summary") as r:
            assert r.status == 401
    # A forged or stale cookie is just no session.
    async with aiohttp.ClientSession(cookies={COOKIE: "forged"}) as http:
        async with http.get(url + "/dashboard/api/summary") as r:
            assert r.status == 401
        async with http.get(url + "/dashboard") as r:
            assert r.status == 401 and 'action="/dashboard/login"' in await r.text()


async def test_revoking_the_admin_key_ends_its_session(gateway: RunningGateway) -> None:
    key = await admin_key(gateway)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with await post_login(http, gateway.url, key) as r:
            assert r.status == 303
        rec = (await gateway.gw.store.keys.list_all())[0]
        await gateway.gw.store.keys.revoke(rec.id)
        deadline = time.monotonic() + 3
        while True:  # the directory reloads within a second
            async with http.get(gateway.url + "/dashboard/api/summary") as r:
                if r.status == 401:
                    break
            assert time.monotonic() < deadline, "the revoked key's session still works"
            await asyncio.sleep(0.05)


async def test_assets_and_bad_input(gateway: RunningGateway) -> None:
    key = await admin_key(gateway)
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            async with http.get(gateway.url + "/dashboard/static/" + name) as r:
                assert r.status == 200 and r.content_type == kind
                # Nothing fetched from elsewhere (the SVG namespace is a name, not a fetch).
                text = (await r.text()).replace("http://www.w3.org/2000/svg", "")
                assert "http://" not in text and "https://" not in text and "//" + "cdn" not in text
        for bad in ("login.html.bak", "..%2Fauth.py", "%2e%2e%2f%2e%2e%2fapp.py"):
            async with http.get(gateway.url + "/dashboard/static/" + bad) as r:
                assert r.status == 404, bad
        async with http.get(gateway.url + "/dashboard/api/summary?range=1y", headers=auth) as r:
            assert r.status == 400 and "range must be one of" in await r.text()
        team = "x" * 200
        async with http.get(gateway.url + f"/dashboard/api/summary?team={team}", headers=auth) as r:
            assert r.status == 400
        async with http.post(gateway.url + "/dashboard/login", data=b"\xff\xfe") as r:
            assert r.status == 401
