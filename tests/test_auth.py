"""Gateway keys: missing, invalid, revoked, expired, rotated; CLI edits seen live."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from aigw.store.base import Store
from tests.conftest import RunningGateway

HI = [{"role": "user", "content": "hi"}]


async def call(gw: RunningGateway, key: str) -> None:
    async with gw.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)


async def expect_401(gw: RunningGateway, key: str, fragment: str) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        await call(gw, key)
    body = info.value.body
    assert isinstance(body, dict) and fragment in body["message"]


async def eventually(check: object, within: float = 1.0) -> float:
    """Retry an async check until it passes; returns how long it took."""
    start = time.monotonic()
    while True:
        try:
            await check()  # type: ignore[operator]
            return time.monotonic() - start
        except (AssertionError, openai.APIError):
            if time.monotonic() - start > within:
                raise
            await asyncio.sleep(0.05)


async def test_missing_and_invalid_keys(gateway: RunningGateway) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        body = {"model": "mock/echo", "messages": HI}
        async with http.post(gateway.url + "/v1/chat/completions", json=body) as r:
            assert r.status == 401
            err = (await r.json())["error"]
            assert err["code"] == "missing_api_key" and "Missing gateway key" in err["message"]
    await expect_401(gateway, "gw-not-a-real-key", "Invalid gateway key")
    # A provider key sent by mistake is just an invalid gateway key.
    await expect_401(gateway, "sk-proj-abc", "Invalid gateway key")


async def test_key_created_by_cli_works_within_a_second(
    gateway: RunningGateway, cli_store: Store
) -> None:
    key, _ = await cli_store.keys.create(team="frontend")
    took = await eventually(lambda: call(gateway, key), within=1.5)
    assert took < 1.5


async def test_revoked_key_is_refused_within_a_second(
    gateway: RunningGateway, cli_store: Store
) -> None:
    key, rec = await cli_store.keys.create(team="frontend")
    await eventually(lambda: call(gateway, key), within=1.5)
    await cli_store.keys.revoke(rec.id)

    async def refused() -> None:
        try:
            await call(gateway, key)
        except openai.AuthenticationError as exc:
            assert "revoked" in exc.message
        else:
            raise AssertionError("the revoked key still works")

    assert await eventually(refused, within=1.5) < 1.5


async def test_expired_key_is_refused(gateway: RunningGateway) -> None:
    key = await gateway.key(expires_at=time.time() + 0.3)
    await call(gateway, key)
    await asyncio.sleep(0.4)
    await expect_401(gateway, key, "expired")


async def test_rotation_keeps_old_key_for_the_grace_period(
    gateway: RunningGateway, cli_store: Store
) -> None:
    old_key, rec = await cli_store.keys.create(team="frontend", app="web")
    await eventually(lambda: call(gateway, old_key), within=1.5)
    new_key, new_rec, old_rec = await cli_store.keys.rotate(rec.id, grace=2.0)
    grace_ends = time.monotonic() + 2.0
    assert (new_rec.team, new_rec.app) == ("frontend", "web")
    assert old_rec.replaced_by == new_rec.id
    await call(gateway, new_key)  # a new key works at once (looked up on a miss)
    await call(gateway, old_key)  # still inside the grace period

    async def old_key_expired() -> None:
        try:
            await call(gateway, old_key)
        except openai.AuthenticationError as exc:
            assert isinstance(exc.body, dict) and "expired" in exc.body["message"]
            return
        raise AssertionError("the old key still works")

    await asyncio.sleep(max(0.0, grace_ends - time.monotonic()))  # the grace period itself
    await eventually(old_key_expired, within=3.0)
    await call(gateway, new_key)


async def test_rotation_with_no_grace_ends_old_key_now(
    gateway: RunningGateway, cli_store: Store
) -> None:
    old_key, rec = await cli_store.keys.create(team="t")
    await cli_store.keys.rotate(rec.id, grace=0)
    await gateway.gw.directory.refresh()
    await expect_401(gateway, old_key, "expired")


async def test_key_in_x_api_key_header_and_query_work(gateway: RunningGateway) -> None:
    import aiohttp

    key = await gateway.key()
    body = {"model": "mock/echo", "messages": HI}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gateway.url + "/v1/chat/completions", json=body, headers={"x-api-key": key}
        ) as r:
            assert r.status == 200
        async with http.post(gateway.url + "/v1/chat/completions?key=" + key, json=body) as r:
            assert r.status == 200


async def test_auth_failures_are_not_billed_to_anyone(gateway: RunningGateway) -> None:
    await expect_401(gateway, "gw-nope", "Invalid")
    rows = await gateway.fetchall("SELECT COUNT(*) FROM ledger")
    assert rows[0][0] == 0
