"""The dashboard in a real headless browser: Debian's chromium driven by Playwright.

`make test` installs chromium first when it is missing (see the Makefile); without it
this module is skipped and says why. One browser serves the whole module; each test
gets a fresh context (no cookies). Set ``AIGW_SCREENSHOTS=docs`` to save the
screenshots the README shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw.app import create_app
from aigw.cli import app as cli_app
from aigw.config import Config, ModelConfig, ProviderConfig
from aigw.gateway import GATEWAY
from aigw.model import Limits
from aigw.server import Server
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI
from tests.pgserver import backend, fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("AIGW_CHROMIUM", "/usr/bin/chromium")
HI = [{"role": "user", "content": "hi"}]
WAIT_MS = 15_000

playwright_api = pytest.importorskip("playwright.async_api")
if shutil.which(CHROMIUM) is None:
    pytest.skip(
        f"no chromium at {CHROMIUM}: `make test` installs it (apt-get install chromium, "
        "as root); or set AIGW_CHROMIUM",
        allow_module_level=True,
    )
expect = playwright_api.expect


@dataclass
class Stack:
    url: str
    home: Path
    admin: str
    keys: dict[str, str]  # team -> key
    fake: FakeOpenAI

    async def call(self, team: str, model: str = "fast", n: int = 1) -> None:
        import openai

        async with openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key=self.keys[team], max_retries=0
        ) as client:
            for _ in range(n):
                # A small max_tokens keeps the budget's worst-case reservation small.
                await client.chat.completions.create(model=model, messages=HI, max_tokens=10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield b
        await b.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store_url() -> AsyncIterator[str]:
    """conftest's ``store_url`` for the whole module (one stack serves every test)."""
    if backend() == "sqlite":
        yield ""
        return
    async with fresh_database(migrated=True) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, store_url: str) -> AsyncIterator[Stack]:
    """A gateway on AIGW_HOME's store (so `aigw report` reads the same ledger), a fake
    OpenAI, three teams with traffic: priced calls, an error, a refusal, a budget."""
    home = tmp_path_factory.mktemp("browser-home")
    home.chmod(0o700)
    fake = await FakeOpenAI().start()
    cfg = Config()
    cfg.store.url = store_url
    if store_url:  # where `aigw report` finds it
        on_store = Config()
        on_store.store.url = store_url
        config_mod.save(on_store, home / "config.toml")
    cfg.routing.max_attempts = 1
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake.base_url + "/v1")
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    cfg.models["fast"] = ModelConfig("fast", "openai", "gpt-4o-mini")
    cfg.models["smart"] = ModelConfig("smart", "openai", "gpt-4o")
    server = Server(create_app(cfg, home / "state.db"), shutdown_timeout=1)
    await server.setup()
    port = await server.listen("127.0.0.1", 0)
    try:
        store = server.app[GATEWAY].store
        await store.teams.create("web", Limits(budget_nusd=500_000, alert_at=(50, 80)))
        await store.teams.create("research", Limits(budget_nusd=600_000))
        await store.teams.create("batch", Limits(rpm=3))
        admin, _ = await store.keys.create(team="-", name="ops", admin=True)
        keys = {
            t: (await store.keys.create(team=t, app="app"))[0] for t in ("web", "research", "batch")
        }
        s = Stack(f"http://127.0.0.1:{port}", home, admin, keys, fake)
        await s.call("web", n=4)
        await s.call("web", "smart", n=2)
        await s.call("research", "smart", n=3)
        await s.call("batch", "mock/echo", n=3)
        fake.script.append(Fail(500, "upstream broke"))
        with pytest.raises(Exception):  # noqa: B017 - the scripted 500
            await s.call("research")
        with pytest.raises(Exception):  # noqa: B017 - batch's rpm refusal
            await s.call("batch", "mock/echo")
        yield s
    finally:
        await server.runner.cleanup()
        await fake.close()


async def report(stack: Stack, *args: str) -> Any:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["report", *args, "--json"],
        env={"AIGW_HOME": str(stack.home), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def usd(text: str) -> str:
    """The page's money format: the exact decimal, trailing zeros off, at least cents."""
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"${int(whole):,}.{frac}"


async def log_in(browser: Any, stack: Stack, key: str) -> Any:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(stack.url + "/dashboard")
    await page.fill("#key", key)
    await page.click("button[type=submit]")
    return page


async def test_page_shows_the_ledger_and_updates_live(browser: Any, stack: Stack) -> None:
    page = await log_in(browser, stack, stack.admin)
    await expect(page.locator("#status")).to_contain_text("live", timeout=WAIT_MS)
    assert page.url == stack.url + "/dashboard"
    cookies = await page.context.cookies()
    assert [c["name"] for c in cookies] == ["aigw_session"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert stack.admin not in cookies[0]["value"]
    since_until = json.loads(
        await page.evaluate("fetch('/dashboard/api/summary?range=24h').then(r => r.text())")
    )
    window = ("--since", since_until["since"], "--until", since_until["until"])
    rows = {r["name"]: r for r in await report(stack, "--by", "team", *window)}
    assert set(rows) == {"web", "research", "batch"}
    for name, r in rows.items():
        row = page.locator(f'#teams tr[data-team="{name}"]')
        await expect(row.locator('[data-col="requests"]')).to_have_text(str(r["requests"]))
        await expect(row.locator('[data-col="errors"]')).to_have_text(str(r["errors"]))
        await expect(row.locator('[data-col="tokens"]')).to_have_text(
            f"{r['prompt_tokens'] + r['completion_tokens']:,}"
        )
        cost = usd(r["cost_usd"]) if r["cost_usd"] is not None else "unknown"
        await expect(row.locator('[data-col="cost"]')).to_have_text(cost)
    await expect(page.locator('#teams tr[data-team="batch"] [data-col="refusals"]')).to_have_text(
        "1"
    )
    models = await report(stack, "--by", "model", *window)
    for m in models:
        await expect(
            page.locator(f'#models tr[data-name="{m["name"]}"] [data-col="requests"]')
        ).to_have_text(str(m["requests"]))
    budgets = {b["name"]: b for b in await report(stack, "--budgets") if b["scope"] == "team"}
    web_budget = page.locator('[data-budget="web"]')
    await expect(web_budget.locator(".used")).to_have_text(f"{budgets['web']['used_percent']:.1f}%")
    assert await web_budget.locator(".tick").count() == 2  # alerts at 50% and 80%
    await expect(page.locator('#health tr[data-target="openai/gpt-4o-mini"] .badge')).to_have_text(
        "closed"
    )
    total = sum(r["requests"] for r in rows.values())
    await expect(page.locator('[data-kpi="requests"]')).to_have_text(str(total))
    await expect(page.locator('[data-kpi="refusals"]')).to_have_text("1")
    if shots := os.environ.get("AIGW_SCREENSHOTS"):
        await page.screenshot(path=str(Path(shots) / "dashboard.png"), full_page=True)
    # New calls show up without a reload.
    await page.evaluate("window.__same_page = true")
    before = rows["web"]["requests"]
    await stack.call("web", n=3)
    web_requests = page.locator('#teams tr[data-team="web"] [data-col="requests"]')
    await expect(web_requests).to_have_text(str(before + 3), timeout=WAIT_MS)
    await expect(page.locator('[data-kpi="requests"]')).to_have_text(str(total + 3))
    assert await page.evaluate("window.__same_page === true")
    # A team and a range narrow the view.
    await page.select_option("#team", "research")
    research = rows["research"]
    await expect(page.locator('[data-kpi="requests"]')).to_have_text(str(research["requests"]))
    await page.click('#ranges button[data-range="1h"]')
    await expect(page.locator('#ranges button[data-range="1h"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    if shots:
        await page.screenshot(path=str(Path(shots) / "dashboard-team.png"), full_page=True)
    await page.context.close()


@pytest.mark.parametrize(
    ("which", "message"),
    [("wrong", "Invalid key."), ("team", "is a team key"), ("empty-ish", "Invalid key.")],
)
async def test_wrong_and_team_keys_are_refused(
    browser: Any, stack: Stack, which: str, message: str
) -> None:
    key = {"wrong": "gw-not-a-key", "team": stack.keys["web"], "empty-ish": "x"}[which]
    page = await log_in(browser, stack, key)
    await expect(page.locator("p.error")).to_contain_text(message, timeout=WAIT_MS)
    assert await page.locator("#teams").count() == 0
    assert await page.context.cookies() == []
    # The data endpoint refuses the browser too.
    status = await page.evaluate("fetch('/dashboard/api/summary').then(r => r.status)")
    assert status == 401
    if which == "team" and (shots := os.environ.get("AIGW_SCREENSHOTS")):
        await page.screenshot(path=str(Path(shots) / "dashboard-login.png"))
    await page.context.close()


async def test_logging_out_and_a_revoked_key_end_the_session(
    browser: Any, stack: Stack, tmp_path: Path
) -> None:
    page = await log_in(browser, stack, stack.admin)
    await expect(page.locator("#status")).to_contain_text("live", timeout=WAIT_MS)
    await page.click("text=Log out")
    await expect(page.locator("#key")).to_be_visible(timeout=WAIT_MS)
    assert await page.context.cookies() == []
    await page.context.close()
