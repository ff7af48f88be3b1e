"""Shared fixtures: an isolated AIGW_HOME, an in-memory keyring, fake providers and a
gateway running on a real socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import openai
import pytest
from aiohttp import web

from aigw.app import create_app
from aigw.config import Config, ModelConfig, ProviderConfig, UpstreamConfig
from aigw.gateway import GATEWAY, Gateway
from aigw.model import Limits
from aigw.server import Server
from aigw.store.base import Store
from aigw.store.open import open_store
from aigw.store.postgres import PostgresStore
from aigw.store.sqlite import SQLiteStore
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.memkeyring import MemoryKeyring
from tests.pgserver import backend, fresh_database


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("AIGW_HOME", str(home))
    for var in list(__import__("os").environ):
        if var.startswith("AIGW_") and var.endswith("_API_KEY"):
            monkeypatch.delenv(var)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("AIGW_CONFIG", raising=False)
    previous = keyring.get_keyring()
    MemoryKeyring.store = {}
    keyring.set_keyring(MemoryKeyring())
    yield home
    keyring.set_keyring(previous)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.close()


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = await FakeAnthropic().start()
    yield fake
    await fake.close()


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    fake = await FakeGemini(api_key="gemini-upstream-key").start()
    yield fake
    await fake.close()


@dataclass
class RunningGateway:
    app: web.Application
    runner: web.AppRunner
    port: int
    state_file: Path

    @property
    def gw(self) -> Gateway:
        return self.app[GATEWAY]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def key(self, team: str = "team-a", app: str | None = "web", **kw: object) -> str:
        """Create a key (the server finds it on its first use)."""
        key, _ = await self.gw.store.keys.create(team=team, app=app, **kw)  # type: ignore[arg-type]
        return key

    async def team(self, name: str, limits: Limits) -> None:
        """Create team ``name`` with ``limits``, or set them when it exists: gateways
        started by one test share one PostgreSQL database, not one SQLite file."""
        if await self.gw.store.teams.find(name) is None:
            await self.gw.store.teams.create(name, limits)
        else:
            await self.gw.store.teams.update(name, limits)

    async def sql(self, query: str) -> list[dict[str, Any]]:
        """Rows of a parameterless query, on whichever backend the gateway uses."""
        store = self.gw.store
        if isinstance(store, PostgresStore):
            return [dict(r) for r in await store.db.fetch(query)]
        assert isinstance(store, SQLiteStore)
        return [dict(r) for r in await store.db.fetchall(query)]

    async def fetchall(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows (indexable by position and name) of ``query`` on whichever backend the
        gateway uses: SQLite's ``?`` placeholders become ``$1``, ``$2``... on
        PostgreSQL, whose ``ledger`` table has the columns of SQLite's ``ledger`` view."""
        store = self.gw.store
        if isinstance(store, PostgresStore):
            parts = query.split("?")
            query = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
            return list(await store.db.fetch(query, *params))
        assert isinstance(store, SQLiteStore)
        return list(await store.db.fetchall(query, tuple(params)))

    async def request_ids(self) -> set[str]:
        """Every request id in the ledger."""
        return {r[0] for r in await self.fetchall("SELECT request_id FROM ledger")}

    async def fetchone(self, query: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetchall(query, params)
        return rows[0] if rows else None

    def openai(self, key: str, **kw: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kw)  # type: ignore[arg-type]


StartGateway = Callable[..., Awaitable[RunningGateway]]


async def listening(app: web.Application) -> Server:
    """``app`` set up and listening on a free port of 127.0.0.1 (close its runner)."""
    server = Server(app, shutdown_timeout=1)
    await server.setup()
    await server.listen("127.0.0.1", 0)
    return server


def provider_config(name: str, type_: str, base_url: str) -> ProviderConfig:
    return ProviderConfig(name=name, type=type_, base_url=base_url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With AIGW_TEST_STORE=postgres, run the tests that open the store (through the
    ``store_url`` fixture) and deselect the rest: they do not depend on the backend and
    the default (SQLite) run has run them. Tests of the SQLite file itself are marked
    ``sqlite_only`` and skipped there, saying so (whether or not they use the fixture,
    so the run lists what PostgreSQL does not cover)."""
    if backend() != "postgres":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        mark = item.get_closest_marker("sqlite_only")
        on_store = "store_url" in getattr(item, "fixturenames", ())
        (keep if on_store or mark is not None else drop).append(item)
        if mark is not None:
            why = mark.args[0] if mark.args else "tests the SQLite state file itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
async def store_url() -> AsyncIterator[str]:
    """ "" (SQLite) or, with AIGW_TEST_STORE=postgres, a fresh PostgreSQL database."""
    if backend() == "sqlite":
        yield ""
        return
    async with fresh_database(migrated=True) as url:
        yield url


@pytest.fixture
async def start_gateway(tmp_path: Path, store_url: str) -> AsyncIterator[StartGateway]:
    started: list[web.AppRunner] = []

    async def start(
        providers: dict[str, tuple[str, str]] | None = None,
        models: dict[str, tuple[str, str]] | None = None,
        upstream: UpstreamConfig | None = None,
        config: Config | None = None,
    ) -> RunningGateway:
        if config is None:
            cfg = Config()
            # One attempt per call: a test scripting one upstream failure sees it as
            # the client does. Retries and failover are tested with their own
            # settings (tests/test_failover.py passes a config).
            cfg.routing.max_attempts = 1
        else:
            cfg = config
        for name, (type_, url) in (providers or {}).items():
            cfg.providers[name] = provider_config(name, type_, url)
        for name, (prov, model) in (models or {}).items():
            cfg.models[name] = ModelConfig(name, prov, model)
        if upstream is not None:
            cfg.upstream = upstream
        if store_url and not cfg.store.url:
            cfg.store.url = store_url
        state = tmp_path / f"state{len(started)}.db"
        server = await listening(create_app(cfg, state))
        started.append(server.runner)
        return RunningGateway(server.app, server.runner, server.port, state)

    yield start
    for runner in reversed(started):
        await runner.cleanup()


@pytest.fixture
async def cli_store(store_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A second store on the gateway's backend, opened as `aigw keys ...` opens it
    (the :func:`gateway` fixture's state file, or the same PostgreSQL database)."""
    cfg = Config()
    cfg.store.url = store_url
    store = await open_store(cfg, tmp_path / "state0.db")
    yield store
    await store.close()


@pytest.fixture
async def gateway(start_gateway: StartGateway, fake_openai: FakeOpenAI) -> RunningGateway:
    """A gateway with provider 'openai' -> the fake and the built-in 'mock' provider."""
    return await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1"), "mock": ("mock", "")},
        models={"fast": ("openai", "gpt-4o-mini")},
    )


@pytest.fixture
async def trio(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    """A gateway with one provider of each family, each a fake upstream with its key."""
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")
    return await start_gateway(
        providers={
            "openai": ("openai", fake_openai.base_url + "/v1"),
            "anthropic": ("anthropic", fake_anthropic.base_url),
            "gemini": ("gemini", fake_gemini.base_url),
            "mock": ("mock", ""),
        },
        models={
            "m-openai": ("openai", "gpt-4o-mini"),
            "m-anthropic": ("anthropic", "claude-sonnet-4-6"),
            "m-gemini": ("gemini", "gemini-2.5-flash"),
        },
    )


async def until(check: Callable[[], bool], seconds: float = 10.0, what: str = "") -> None:
    """Wait for a condition the server reaches on its own (a wait on a condition, never
    on a sleep that is usually long enough)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not reached within {seconds:g} s: {what}"
        await asyncio.sleep(0.01)
