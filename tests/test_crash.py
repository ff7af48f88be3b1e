"""kill -9 under load: every response a client received complete has its ledger row
and its audit event, and the audit chain still verifies."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import openai
import pytest

from aigw import audit
from aigw.config import Config, ProviderConfig
from aigw.store.open import open_store
from tests import statedb
from tests.fakes.openai import FakeOpenAI
from tests.serverproc import start_server

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


async def test_kill_9_under_load_loses_no_answered_row(
    tmp_path: Path, fake_openai: FakeOpenAI, store_url: str
) -> None:
    home = tmp_path / "crash"
    home.mkdir()
    cfg = statedb.use_store(Config(), store_url)
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    store = await open_store(cfg, home / "state.db")
    key, _ = await store.keys.create(team="load")
    await store.close()

    server = await start_server(home, cfg, {"AIGW_OPENAI_API_KEY": "sk-test"})
    completed: set[str] = set()
    started = 0

    async def worker(n: int) -> None:
        nonlocal started
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=10
        ) as client:
            while True:
                started += 1
                stream = n % 2 == 0
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="openai/gpt-4o-mini", messages=HI, stream=stream
                    )
                    parsed = raw.parse()
                    if isinstance(parsed, openai.AsyncStream):
                        async for _ in parsed:
                            pass
                except (openai.APIError, OSError):
                    return  # the server is gone
                completed.add(raw.headers["x-request-id"])

    workers = [asyncio.create_task(worker(i)) for i in range(24)]
    while len(completed) < 300:  # noqa: ASYNC110 - polling a counter the workers bump
        await asyncio.sleep(0.02)
    server.kill9()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 15)
    await server.proc.wait()
    assert server.proc.returncode == -9

    # Restart on the same store: it opens cleanly and the rows are all there.
    server2 = await start_server(home, cfg, {"AIGW_OPENAI_API_KEY": "sk-test"})
    try:
        store = await open_store(cfg, home / "state.db")
        try:
            rows = await statedb.fetchall(store, "SELECT request_id FROM ledger")
            recorded = {r[0] for r in rows}
            chain = [e async for e in store.audit.chain()]
            verdict = audit.verify(chain, await store.audit.head(), None)
        finally:
            await store.close()
    finally:
        await server2.stop()
    missing = completed - recorded
    assert not missing, f"{len(missing)} of {len(completed)} answered requests have no row"
    assert len(completed) >= 300
    audited = {e.request_id for e in chain if e.kind == "proxy"}
    unaudited = completed - audited
    assert not unaudited, f"{len(unaudited)} answered requests have no audit event"
    assert audited >= recorded  # every ledger row has its event (same transaction)
    assert verdict.ok, verdict.problem
