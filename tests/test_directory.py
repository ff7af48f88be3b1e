"""The directory of keys and teams: a key works the moment it is created, with its
team's limits from its first call; unknown keys cost one store lookup per period."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from aigw.directory import Directory
from aigw.model import KeyRecord, Limits, hash_key
from aigw.store import SQLiteStore, open_database
from aigw.store.base import Store
from aigw.store.sqlite import keys as keystore
from aigw.store.sqlite import teams as teamstore
from tests.conftest import RunningGateway

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key hash the directory asks the store for (whatever the backend)."""
    asked: list[str] = []
    ask = Directory._ask

    async def counting(self: Directory, key_hash: str) -> KeyRecord | None:
        asked.append(key_hash)
        return await ask(self, key_hash)

    monkeypatch.setattr(Directory, "_ask", counting)
    return asked


async def test_a_new_key_works_on_its_first_request(
    gateway: RunningGateway, cli_store: Store, lookups: list[str]
) -> None:
    key, _ = await cli_store.keys.create(team="t")
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
        await client.chat.completions.create(model="mock/echo", messages=HI)
    # At most once, then it is in memory (none when the store's change notification
    # loaded it first, as PostgreSQL's may).
    assert lookups in ([], [hash_key(key)])


async def test_a_new_teams_limits_apply_from_its_first_request(
    gateway: RunningGateway, cli_store: Store
) -> None:
    await cli_store.teams.create("slow", Limits(rpm=1))
    key, _ = await cli_store.keys.create(team="slow")
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="mock/echo", messages=HI)


async def test_an_unknown_key_hammered_costs_one_lookup_per_period(
    gateway: RunningGateway, lookups: list[str]
) -> None:
    bad = "gw-" + "x" * 40
    started = time.monotonic()

    async def one(http: aiohttp.ClientSession) -> int:
        async with http.get(
            gateway.url + "/v1/models", headers={"Authorization": f"Bearer {bad}"}
        ) as resp:
            return resp.status

    async with aiohttp.ClientSession() as http:
        statuses = await asyncio.gather(*[one(http) for _ in range(1000)])
    elapsed = time.monotonic() - started
    assert set(statuses) == {401}
    periods = 1 + int(elapsed / gateway.gw.directory.miss_seconds)
    assert 1 <= len(lookups) <= periods


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_misses_are_remembered_briefly_and_bounded(
    tmp_path: Path, lookups: list[str]
) -> None:
    db = await open_database(tmp_path / "s.db")
    clock = Clock()
    directory = Directory(
        SQLiteStore(db).keys, SQLiteStore(db).teams, clock=clock, miss_seconds=1.0, max_misses=100
    )
    try:
        # Concurrent misses of one key share a lookup; later ones hit the memory.
        results = await asyncio.gather(*[directory.lookup("h") for _ in range(50)])
        assert results == [None] * 50 and len(lookups) == 1
        assert await directory.lookup("h") is None and len(lookups) == 1
        clock.t = 1.5  # the miss has expired: asked again
        assert await directory.lookup("h") is None and len(lookups) == 2
        for i in range(1000):  # distinct client-chosen hashes: the memory is bounded
            await directory.lookup(f"other{i}")
        assert len(directory._misses) <= 100
        # A key created meanwhile is found, and loaded with its team.
        await teamstore.create(db, "t", Limits(rpm=3))
        key, rec = await keystore.create(db, team="t")
        assert await directory.lookup(hash_key(key)) == rec
        team = directory.team("t")
        assert team is not None and team.limits.rpm == 3
    finally:
        await directory.close()
        await db.close()


async def test_the_watcher_stops_when_a_change_lands_as_it_is_cancelled(tmp_path: Path) -> None:
    """A change notification (PostgreSQL's LISTEN calls ``changed()`` as it connects)
    arriving just as the gateway stops must not swallow the cancellation: the watcher
    ends, so the shutdown does not hang."""
    db = await open_database(tmp_path / "s.db")
    directory = Directory(SQLiteStore(db).keys, SQLiteStore(db).teams)
    try:
        # Each step lands the notification one loop turn later relative to the cancel.
        for turns in range(6):
            watcher = asyncio.create_task(directory.watch())
            for _ in range(3):  # the watcher is waiting for a change
                await asyncio.sleep(0)
            directory.changed()
            for _ in range(turns):
                await asyncio.sleep(0)
            watcher.cancel()
            await asyncio.wait([watcher], timeout=5)
            assert watcher.cancelled(), f"the watcher ignored its cancellation ({turns} turns)"
    finally:
        await directory.close()
        await db.close()
