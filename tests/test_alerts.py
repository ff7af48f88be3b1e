"""Budget alerts: each threshold once per period, logged, posted to a webhook (retried,
never blocking), remembered across restarts and flagged in `aigw report`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aigw import report
from aigw.config import AlertsConfig, Config, ProviderConfig
from aigw.limits.alerts import Alerts, retry_after_seconds
from aigw.limits.periods import Calendar
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.openai import FakeOpenAI
from tests.limitkit import PER_CALL, WORST_20, Webhook, gateways, outcomes, team


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = await Webhook().start()
    yield hook
    await hook.close()


def config(fake: FakeOpenAI, hook: Webhook) -> Config:
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake.base_url + "/v1")
    cfg.alerts.webhook_url = hook.url
    return cfg


async def calls(gw: RunningGateway, key: str, n: int) -> list[str]:
    async with gw.openai(key) as client:
        return [
            (await outcomes(client, 1, "openai/gpt-4o-mini", max_tokens=20))[0] for _ in range(n)
        ]


async def test_thresholds_fire_once_each_with_a_retried_webhook(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    webhook: Webhook,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await start_gateway(config=config(fake_openai, webhook))
    gw.gw.limiter.alerts.backoff = 0.01
    webhook.statuses.extend([500, 503])  # the first alert needs two retries
    await team(gw, "ml", budget_nusd=20 * PER_CALL)
    key = await gw.key(team="ml")
    with caplog.at_level(logging.WARNING, logger="aigw.alerts"):
        assert await calls(gw, key, 9) == ["ok"] * 9  # 45 %
        await asyncio.sleep(0.05)
        assert webhook.received == []
        assert await calls(gw, key, 1) == ["ok"]  # 50 %
        first = (await webhook.wait_for(1))[0]
        assert await calls(gw, key, 6) == ["ok"] * 6  # 80 %
        await webhook.wait_for(2)
        assert await calls(gw, key, 1) == ["ok"]  # 85 %: nothing new
    await asyncio.sleep(0.05)
    assert [b["threshold"] for b in webhook.received] == [50, 80]
    assert webhook.attempts == 4  # 500, 503, then the two deliveries
    month = Calendar("UTC").period("month", time.time())
    assert first["text"] == (
        f"aigw: team ml has used 50% of its $0.000117 monthly budget: $0.0000585 spent in "
        f"{month.label} (50%). The budget resets {month.end.isoformat()} 00:00 UTC."
    )
    assert first["event"] == "budget.threshold" and first["scope"] == "team"
    assert first["spent_usd"] == "0.000058500" and first["budget_usd"] == "0.000117000"
    logged = [r.getMessage() for r in caplog.records if "budget alert:" in r.getMessage()]
    assert len(logged) == 2 and "used 80%" in logged[1]
    assert any("retry 2 of 5" in r.getMessage() for r in caplog.records)

    await gw.gw.limiter.persist()
    rows = await report.budgets(gw.gw.store, gw.gw.config, time.time())
    assert [(r.name, r.alerts, r.refused) for r in rows] == [("ml", [50, 80], False)]


async def test_refusal_alerts_once_and_alerts_survive_a_restart(
    tmp_path: Path, fake_openai: FakeOpenAI, webhook: Webhook
) -> None:
    budget = PER_CALL + WORST_20  # two calls; the third's worst case would not fit
    async with gateways(tmp_path / "state.db") as start:
        gw = await start(config(fake_openai, webhook))
        # Two calls spend PER_CALL / budget > 40% of it.
        await team(gw, "ops", budget_nusd=budget, alert_at=(40,))
        key = await gw.key(team="ops")
        assert await calls(gw, key, 3) == ["ok", "ok", "budget_exceeded"]
        assert await calls(gw, key, 2) == ["budget_exceeded"] * 2
        hooks = await webhook.wait_for(2)
        assert [h["event"] for h in hooks] == ["budget.threshold", "budget.refused"]
        assert "is out of budget: a request was refused" in hooks[1]["text"]
        await gw.runner.cleanup()  # persists the fired alerts

        again = await start(config(fake_openai, webhook))
        assert await calls(again, key, 1) == ["budget_exceeded"]
        await asyncio.sleep(0.1)
        assert len(webhook.received) == 2  # neither alert fired again
        rows = await report.budgets(again.gw.store, again.gw.config, time.time())
        assert (rows[0].alerts, rows[0].refused) == ([40], True)


async def test_a_key_budget_alerts_too(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, webhook: Webhook
) -> None:
    from aigw.model import Limits

    gw = await start_gateway(config=config(fake_openai, webhook))
    key = await gw.key(
        team="t", limits=Limits(budget_nusd=PER_CALL + WORST_20 - 1, alert_at=(100,))
    )
    assert await calls(gw, key, 1) == ["ok"]
    assert await calls(gw, key, 1) == ["budget_exceeded"]  # 1 call + a worst case > budget
    hooks = await webhook.wait_for(1)
    assert hooks[0]["scope"] == "key" and hooks[0]["team"] == "t"
    assert "(team t) is out of budget" in hooks[0]["text"]


async def test_alerts_off_means_no_refusal_alert_either(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, webhook: Webhook
) -> None:
    gw = await start_gateway(config=config(fake_openai, webhook))
    await team(gw, "quiet", budget_nusd=1, alert_at=())
    key = await gw.key(team="quiet")
    assert await calls(gw, key, 1) == ["budget_exceeded"]
    assert gw.gw.limiter.alerts.fired == set()


async def test_a_dead_webhook_never_slows_requests(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = Config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.alerts.webhook_url = "http://127.0.0.1:9/nothing-listens-here"
    gw = await start_gateway(config=cfg)
    await team(gw, "x", budget_nusd=WORST_20, alert_at=(1,))
    key = await gw.key(team="x")
    started = time.monotonic()
    assert await calls(gw, key, 4) == ["ok"] + ["budget_exceeded"] * 3
    assert time.monotonic() - started < 1.0


async def test_a_full_queue_drops_the_post_but_keeps_log_and_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = Calendar("UTC")
    alerts = Alerts(AlertsConfig(queue_size=1), cal, "http://127.0.0.1:9/")
    p = cal.period("month", time.time())
    for mark in ("50", "80", "100"):
        alerts.fire("team", "t", "t", p, mark, 1, 2, time.time())
    alerts.fire("team", "t", "t", p, "50", 1, 2, time.time())  # once per period
    assert alerts.queue.qsize() == 1 and alerts.failed == 2
    assert [r.mark for r in alerts.unsaved] == ["50", "80", "100"]
    assert sum("queue is full" in r.getMessage() for r in caplog.records) == 2


def test_retry_after_forms() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds("7", now) == 7
    assert retry_after_seconds("0.5", now) == 0.5
    at_eight = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 GMT
    assert retry_after_seconds("Fri, 15 Jan 2027 08:00:10 GMT", at_eight) == 10
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


async def test_the_env_var_overrides_the_webhook_url(
    start_gateway: StartGateway, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGW_ALERTS_WEBHOOK_URL", webhook.url)
    gw = await start_gateway(providers={"mock": ("mock", "")})
    assert gw.gw.limiter.alerts.webhook_url == webhook.url
