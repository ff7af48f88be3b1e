"""Tracing: the client's x-request-id is kept, the provider's own request id is recorded.

The fakes send the provider's request-id header as the real APIs document it: OpenAI
``x-request-id`` on every response, Anthropic ``request-id``. Gemini documents none.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aigw.store.sqlite import ledger
from aigw.store.sqlite.db import open_database
from aigw.store.sqlite.migrations import MIGRATIONS
from tests.conftest import RunningGateway

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_client_request_id_is_kept_and_upstream_id_recorded(
    trio: RunningGateway, stream: bool
) -> None:
    key = await trio.key()
    client = trio.openai(key, default_headers={"x-request-id": "trace-abc.1:2_3"})
    try:
        for model, upstream_id in (("m-openai", "req_fakeoai"), ("m-anthropic", "req_fake")):
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=HI, stream=stream
            )
            parsed = raw.parse()
            if stream:
                async for _ in parsed:  # type: ignore[union-attr]
                    pass
            assert raw.headers["x-request-id"] == "trace-abc.1:2_3"
            assert raw.headers["x-aigw-upstream-request-id"].startswith(upstream_id)
        # Gemini sends no request id: no header, NULL in the ledger.
        graw = await client.chat.completions.with_raw_response.create(
            model="m-gemini", messages=HI, extra_headers={"x-request-id": "trace-gem"}
        )
        assert graw.headers["x-request-id"] == "trace-gem"
        assert "x-aigw-upstream-request-id" not in graw.headers
    finally:
        await client.close()
    # Two calls with the same client id: both recorded (request_id is not unique).
    rows = await trio.gw.store.reports.by_request_id("trace-abc.1:2_3")
    assert len(rows) == 2
    assert {r.provider for r in rows} == {"openai", "anthropic"}
    by_provider = {r.provider: r.upstream_request_id for r in rows}
    assert by_provider["openai"] is not None and by_provider["openai"].startswith("req_fakeoai")
    assert by_provider["anthropic"] is not None and by_provider["anthropic"].startswith("req_fake")
    (gem,) = await trio.gw.store.reports.by_request_id("trace-gem")
    assert gem.upstream_request_id is None


@pytest.mark.parametrize(
    "bad", ["", "a" * 129, "has space", "semi;colon", "caf%C3%A9", "a/b", "<script>"]
)
async def test_insane_client_request_id_is_replaced(gateway: RunningGateway, bad: str) -> None:
    key = await gateway.key()
    client = gateway.openai(key)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, extra_headers={"x-request-id": bad}
        )
    finally:
        await client.close()
    rid = raw.headers["x-request-id"]
    assert rid != bad and rid.startswith("req_")
    ids = await gateway.request_ids()
    assert ids == {rid}


async def test_longest_sane_request_id_is_kept(gateway: RunningGateway) -> None:
    key = await gateway.key()
    client = gateway.openai(key)
    rid = "A-z0._:" * 18 + "12"  # 128 characters
    assert len(rid) == 128
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, extra_headers={"x-request-id": rid}
        )
    finally:
        await client.close()
    assert raw.headers["x-request-id"] == rid
    assert await gateway.request_ids() == {rid}


async def test_migration_from_blank_adds_upstream_request_id(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "s.db")
    await db.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
    assert "upstream_request_id" in cols


async def test_migration_from_an_older_file_keeps_its_rows(tmp_path: Path) -> None:
    """A state file written before 0003 upgrades; its rows read back with no upstream id."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, sql in MIGRATIONS:
            if name.startswith("0003"):
                break
            conn.executescript(sql)
            conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
        conn.execute(
            "INSERT INTO ledger (ts, request_id, endpoint, status, latency_ms) "
            "VALUES (1, 'req_old', 'chat.completions', 200, 5)"
        )
    db = await open_database(path)
    try:
        (row,) = await ledger.by_request_id(db, "req_old")
        assert row.upstream_request_id is None and row.status == 200
    finally:
        await db.close()
