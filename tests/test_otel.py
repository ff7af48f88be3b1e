"""OpenTelemetry traces (the [otel] extra), checked with the SDK's in-memory exporter:
one span per request, one child span per upstream attempt, no key nor body in them;
off by default; a clear error when asked for without the extra."""

from __future__ import annotations

import builtins
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aigw import config as config_mod
from aigw.config import Config, ModelConfig, ProviderConfig, TargetConfig
from aigw.errors import ConfigError
from aigw.observe import tracing
from tests.conftest import StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "a secret prompt"}]


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    spans = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "make_exporter", lambda cfg: spans)
    return spans


def failover_config(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> Config:
    cfg = Config()
    cfg.otel.enabled = True
    cfg.routing.backoff = 0.01
    cfg.routing.backoff_max = 0.02
    cfg.providers["openai"] = ProviderConfig("openai", "openai", fake_openai.base_url + "/v1")
    cfg.providers["anthropic"] = ProviderConfig("anthropic", "anthropic", fake_anthropic.base_url)
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
    return cfg


async def test_a_span_per_request_and_a_child_per_attempt(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")
    gw = await start_gateway(config=failover_config(fake_openai, fake_anthropic))
    key = await gw.key(team="team-a", app="web")
    fake_openai.then(Fail(500, "boom"))
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with gw.openai(key, default_headers={"traceparent": traceparent}) as client:
        raw = await client.chat.completions.with_raw_response.create(model="smart", messages=HI)
    gw.app[tracing.TRACING].flush()
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.kind is SpanKind.SERVER]
    children = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert [c.attributes["aigw.target"] for c in children] == [  # type: ignore[index]
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4-6",
    ]
    for child in children:
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert children[0].status.status_code is StatusCode.ERROR
    assert children[0].attributes["http.response.status_code"] >= 500  # type: ignore[index,operator]
    assert children[1].status.status_code is StatusCode.UNSET
    # The caller's trace continues through the gateway.
    assert f"{root.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    attrs = dict(root.attributes or {})
    assert attrs["aigw.request_id"] == raw.headers["x-request-id"]
    assert attrs["aigw.team"] == "team-a" and attrs["aigw.app"] == "web"
    assert attrs["gen_ai.request.model"] == "smart"
    assert attrs["aigw.provider"] == "anthropic"
    assert attrs["http.response.status_code"] == 200 and attrs["aigw.attempts"] == 2
    assert attrs["gen_ai.usage.input_tokens"] > 0  # type: ignore[operator]
    assert isinstance(attrs["aigw.cost_nusd"], int)
    dumped = repr([(s.name, s.attributes, s.events) for s in spans])
    for secret in (key, "openai-upstream-key", "anthropic-upstream-key", "secret prompt"):
        assert secret not in dumped


async def test_a_refused_call_has_its_span_too(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    exporter: InMemorySpanExporter,
) -> None:
    gw = await start_gateway(config=failover_config(fake_openai, fake_anthropic))
    async with gw.openai("gw-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="smart", messages=HI)
    gw.app[tracing.TRACING].flush()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 401
    assert "aigw.team" not in span.attributes


async def test_off_by_default(start_gateway: StartGateway, exporter: InMemorySpanExporter) -> None:
    assert Config().otel.enabled is False
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig("mock", "mock", "")
    gw = await start_gateway(config=cfg)
    assert tracing.TRACING not in gw.app
    key = await gw.key()
    async with gw.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
    assert exporter.get_finished_spans() == ()


def test_enabled_without_the_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kw: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    cfg = config_mod.parse({"otel": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"pip install 'aigw\[otel\]'"):
        tracing.check(cfg.otel)
    tracing.check(config_mod.parse({}).otel)  # off: nothing to check


def test_otel_config_is_checked() -> None:
    cfg = config_mod.parse(
        {"otel": {"enabled": True, "endpoint": "http://collector:4318/v1/traces"}}
    )
    assert cfg.otel.endpoint == "http://collector:4318/v1/traces"
    with pytest.raises(ConfigError, match=r"otel.endpoint: must start with http"):
        config_mod.parse({"otel": {"endpoint": "collector:4318"}})
    with pytest.raises(ConfigError, match=r"otel.sample_ratio: must be between 0 and 1"):
        config_mod.parse({"otel": {"sample_ratio": 2}})
