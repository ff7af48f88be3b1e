"""GET /metrics: real scrapes of a running gateway, parsed with prometheus_client's own
text parser, checked against the ledger; who may scrape; label bounds."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from aigw.app import create_app
from aigw.config import Config, ModelConfig, ProviderConfig, TargetConfig
from aigw.model import LedgerRow, Limits
from aigw.observe.metrics import MAX_MODELS, OTHER, Metrics
from aigw.server import Server
from aigw.web.metrics import is_loopback
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


async def scrape(url: str, headers: dict[str, str] | None = None) -> list[Sample]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels`` (0 when none)."""
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


@pytest.fixture
async def routed(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    """'smart' -> openai gpt-4o-mini, failing over to anthropic claude-sonnet-4-6."""
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")
    cfg = Config()
    cfg.routing.backoff = cfg.routing.backoff_max = 0.01
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.providers["anthropic"] = ProviderConfig("anthropic", "anthropic", fake_anthropic.base_url)
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    cfg.models["smart"] = ModelConfig(
        "smart",
        "openai",
        "gpt-4o-mini",
        targets=(
            TargetConfig("openai", "gpt-4o-mini"),
            TargetConfig("anthropic", "claude-sonnet-4-6"),
        ),
        allow_pricier_fallback=True,
    )
    return await start_gateway(config=cfg)


async def test_scrape_counts_what_the_ledger_holds(
    routed: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    gw = routed.gw
    await gw.store.teams.create("web", Limits(budget_nusd=10**9))  # $1
    key = await routed.key(team="web")
    ids = []
    async with routed.openai(key) as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(model="smart", messages=HI)
            ids.append(raw.headers["x-request-id"])
        stream = await client.chat.completions.create(model="smart", messages=HI, stream=True)
        async for _ in stream:
            pass
        # A retry (a short Retry-After: the same target again), then a failover.
        fake_openai.script.append(Fail(429, headers={"retry-after": "0"}))
        fake_openai.script.append(Fail(500))
        failed_over = await client.chat.completions.with_raw_response.create(
            model="smart", messages=HI
        )
        assert failed_over.headers["x-aigw-provider"] == "anthropic"
        ids.append(failed_over.headers["x-request-id"])
    rows: list[LedgerRow] = []
    for rid in ids:
        rows += await gw.store.reports.by_request_id(rid)
    samples = await scrape(routed.url)
    ok = {"team": "web", "model": "gpt-4o-mini", "provider": "openai", "status": "2xx"}
    assert value(samples, "aigw_requests_total", **ok) == 3
    claude = {"team": "web", "model": "claude-sonnet-4-6", "provider": "anthropic"}
    assert value(samples, "aigw_requests_total", **claude, status="2xx") == 1
    openai_rows = [r for r in rows if r.provider == "openai"]
    prompt = value(samples, "aigw_tokens_total", team="web", provider="openai", kind="prompt")
    assert prompt == sum(r.prompt_tokens for r in openai_rows) + 11  # + the stream's
    total_cost = sum(
        s.value for s in samples if s.name == "aigw_cost_usd_total" and s.labels["team"] == "web"
    )
    ledger_cost = (await gw.store.reports.spend_of("team", "web", 0, 2e9))[0]
    assert total_cost == pytest.approx(ledger_cost / 1e9, rel=1e-9) and total_cost > 0
    assert (
        value(
            samples, "aigw_request_duration_seconds_count", model="gpt-4o-mini", provider="openai"
        )
        == 3
    )
    assert (
        value(
            samples,
            "aigw_time_to_first_token_seconds_count",
            model="gpt-4o-mini",
            provider="openai",
        )
        >= 1
    )
    inf = value(
        samples,
        "aigw_request_duration_seconds_bucket",
        model="gpt-4o-mini",
        provider="openai",
        le="+Inf",
    )
    assert inf == 3
    assert value(samples, "aigw_upstream_errors_total", provider="openai", kind="status") == 2
    assert value(samples, "aigw_retries_total", provider="openai") == 1
    assert value(samples, "aigw_failovers_total", provider="openai") == 1
    state = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(samples, "aigw_circuit_breaker_state", **state, state="closed") == 1
    assert value(samples, "aigw_circuit_breaker_state", **state, state="open") == 0
    ratio = value(samples, "aigw_budget_used_ratio", team="web")
    assert ratio == pytest.approx(ledger_cost / 10**9) and ratio > 0


async def test_refusals_are_counted_by_reason(gateway: RunningGateway) -> None:
    await gateway.gw.store.teams.create("tight", Limits(rpm=1))
    key = await gateway.key(team="tight")
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="mock/echo", messages=HI)
    samples = await scrape(gateway.url)
    assert value(samples, "aigw_limit_refusals_total", team="tight", reason="rpm") == 1
    assert value(samples, "aigw_requests_total", team="tight", status="4xx") == 1
    assert value(samples, "aigw_requests_total", team="tight", status="2xx") == 1


async def admin_and_team_keys(gw: RunningGateway) -> tuple[str, str]:
    admin, _ = await gw.gw.store.keys.create(team="-", admin=True)
    return admin, await gw.key()


async def test_require_admin_key(start_gateway: StartGateway) -> None:
    cfg = Config()
    cfg.metrics.require_admin_key = True
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    gw = await start_gateway(config=cfg)
    admin, team = await admin_and_team_keys(gw)
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url + "/metrics") as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
        async with http.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {team}"}) as r:
            assert r.status == 403
            assert (await r.json())["error"]["code"] == "admin_key_required"
    await scrape(gw.url, {"Authorization": f"Bearer {admin}"})  # asserts a 200


def lan_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: it only picks a route
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if is_loopback(addr) else addr


@pytest.fixture
async def on_lan(tmp_path: Path) -> AsyncIterator[tuple[str, RunningGateway]]:
    addr = lan_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind to")
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    server = Server(create_app(cfg, tmp_path / "lan.db"), shutdown_timeout=1)
    await server.setup()
    port = await server.listen(addr, 0)
    # A RunningGateway for its helpers; its url is the loopback one, not used here.
    yield f"http://{addr}:{port}", RunningGateway(server.app, server.runner, port, tmp_path)
    await server.runner.cleanup()


async def test_open_to_loopback_only_by_default(on_lan: tuple[str, RunningGateway]) -> None:
    url, gw = on_lan
    admin, team = await admin_and_team_keys(gw)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics") as r:  # the peer is this machine's LAN address
            assert r.status == 401
        async with http.get(url + "/metrics", headers={"Authorization": f"Bearer {team}"}) as r:
            assert r.status == 403
    await scrape(url, {"Authorization": f"Bearer {admin}"})


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("::ffff:192.0.2.2", False),
        ("fd00::2", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_is_loopback(remote: str | None, loopback: bool) -> None:
    assert is_loopback(remote) is loopback


def test_label_values_are_bounded() -> None:
    m = Metrics()
    for i in range(MAX_MODELS + 50):
        row = LedgerRow(
            ts=0, request_id="r", key_id="k", team="t", app=None, endpoint="chat",
            model=f"client-{i}", provider="p", upstream_model=f"m{i}", status=200,
            stream=False, prompt_tokens=1, completion_tokens=1, cached_tokens=0,
            cache_write_tokens=0, reasoning_tokens=0, usage_estimated=False, cost_nusd=5,
            latency_ms=10, error=None,
        )  # fmt: skip
        m.record(row, None, ())
    text = m.exposition().decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    models = {s.labels["model"] for s in samples if s.name == "aigw_requests_total"}
    assert len(models) == MAX_MODELS + 1 and OTHER in models
    assert value(samples, "aigw_requests_total", model=OTHER) == 50
    assert not any("client-" in s.labels.get("model", "") for s in samples)
