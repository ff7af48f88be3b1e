"""The cost ledger: one exact row per call, committed before the answer ends."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest

from aigw import report
from aigw.pricing import usd
from aigw.store.base import Store
from aigw.usage import Usage
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Fail, Reply
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


async def test_100_concurrent_requests_are_recorded_exactly(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    # Odd token counts at gpt-4o-mini prices give costs with many decimals.
    fake_openai.default = Reply(usage=Usage(prompt_tokens=1237, completion_tokens=311))
    keys = [await gateway.key(team=f"team-{i % 3}", app=f"app-{i % 5}") for i in range(10)]
    clients = [gateway.openai(k) for k in keys]
    try:
        results = await asyncio.gather(
            *[
                clients[i % 10].chat.completions.with_raw_response.create(
                    model="fast", messages=HI, stream=i % 2 == 0
                )
                for i in range(100)
            ]
        )
        for raw in results:  # drain the streams
            parsed = raw.parse()
            if isinstance(parsed, openai.AsyncStream):
                async for _ in parsed:
                    pass
    finally:
        for c in clients:
            await c.close()
    ids = {r.headers["x-request-id"] for r in results}
    assert len(ids) == 100
    rows = await gateway.fetchall("SELECT request_id, cost_nusd, status FROM ledger")
    assert {r["request_id"] for r in rows} == ids
    per_call = 1237 * 150 + 311 * 600  # nano-USD at $0.15 / $0.60 per million
    assert all(r["cost_nusd"] == per_call and r["status"] == 200 for r in rows)
    # Group commit: many rows shared a transaction.
    assert gateway.gw.writer.commits < 100
    # Report totals equal the sum of the rows, to the nano-dollar, whatever the grouping.
    for by in ("team", "app", "key", "model", "day"):
        rep = await report.build(gateway.gw.store.reports, by=by, since=None)
        assert rep.total.requests == 100
        assert rep.total.cost_nusd == 100 * per_call
        assert sum(Decimal(report.row_dict(r, by)["cost_usd"]) for r in rep.rows) == usd(
            100 * per_call
        )
    assert usd(100 * per_call) == Decimal("0.037215")


async def test_failed_calls_are_recorded(gateway: RunningGateway, fake_openai: FakeOpenAI) -> None:
    fake_openai.then(Fail(503, "overloaded"))
    key = await gateway.key(team="ops")
    async with gateway.openai(key) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="fast", messages=HI)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="missing", messages=HI)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="fast", messages=HI, temperature=9)
    rows = await gateway.fetchall(
        "SELECT status, model, provider, team, error FROM ledger ORDER BY id"
    )
    assert [(r["status"], r["model"], r["provider"], r["team"]) for r in rows] == [
        (503, "fast", "openai", "ops"),
        (404, "missing", None, "ops"),
        (400, None, None, "ops"),
    ]
    assert all(r["error"] for r in rows)
    rep = await report.build(gateway.gw.store.reports, by="team", since=None)
    assert rep.rows[0].errors == 3


async def test_stream_ends_with_its_cost_as_an_sse_comment(gateway: RunningGateway) -> None:
    import aiohttp

    key = await gateway.key()
    body = {"model": "fast", "stream": True, "messages": HI}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gateway.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        text = (await r.read()).decode()
    assert text.endswith(": x-aigw-cost-usd 0.000005850\n\ndata: [DONE]\n\n")


async def test_unpriced_model_is_flagged_not_zero(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="openai/llama-3-70b-local", messages=HI
        )
    assert raw.headers["x-aigw-cost-usd"] == "unpriced"
    rows = await gateway.gw.store.reports.by_request_id(raw.headers["x-request-id"])
    assert rows[0].cost_nusd is None and rows[0].prompt_tokens == 11
    rep = await report.build(gateway.gw.store.reports, by="model", since=None)
    assert rep.total.unpriced == 1 and rep.total.prompt_tokens == 11


async def test_config_price_override_wins(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    from aigw.config import Config, PriceConfig

    cfg = Config()
    cfg.prices["openai/gpt-4o-mini"] = PriceConfig(input=1, output=2)
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")}, config=cfg
    )
    key = await gw.key()
    async with gw.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini", messages=HI
        )
    assert raw.headers["x-aigw-cost-usd"] == "0.000025000"  # 11 x $1/M + 7 x $2/M


async def test_row_is_committed_before_the_client_sees_the_end(
    gateway: RunningGateway, cli_store: Store
) -> None:
    """When the SDK returns, the row is already readable from another connection."""
    key = await gateway.key()
    async with gateway.openai(key) as client:
        for stream in (False, True):
            raw = await client.chat.completions.with_raw_response.create(
                model="mock/echo", messages=HI, stream=stream
            )
            parsed = raw.parse()
            if isinstance(parsed, openai.AsyncStream):
                async for _ in parsed:
                    pass
            rid = raw.headers["x-request-id"]
            assert await cli_store.reports.by_request_id(rid), f"no row for {rid}"
