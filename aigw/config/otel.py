"""``[otel]``: OpenTelemetry traces (the optional extra ``pip install 'aigw[otel]'``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class OtelConfig:
    """One span per request, one child span per upstream attempt, sent over OTLP/HTTP."""

    enabled: bool = False
    # The OTLP/HTTP traces endpoint, e.g. "http://collector:4318/v1/traces". "" = the
    # exporter's own default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
    # $OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else http://localhost:4318/v1/traces.
    endpoint: str = ""
    service_name: str = "aigw"
    sample_ratio: float = 1.0  # the share of requests traced (0..1)


def _read(r: Reader) -> OtelConfig:
    d = OtelConfig()
    cfg = OtelConfig(
        enabled=r.get("enabled", bool, d.enabled),
        endpoint=r.get("endpoint", str, d.endpoint),
        service_name=r.get("service_name", str, d.service_name),
        sample_ratio=r.number("sample_ratio", d.sample_ratio),
    )
    if cfg.endpoint and not cfg.endpoint.startswith(("http://", "https://")):
        r.fail("endpoint", "must start with http:// or https://")
    if not cfg.service_name:
        r.fail("service_name", "must not be empty")
    if cfg.sample_ratio > 1:
        r.fail("sample_ratio", f"must be between 0 and 1 (got {cfg.sample_ratio!r})")
    return cfg


def _write(o: OtelConfig) -> dict[str, Any]:
    return {
        "enabled": o.enabled,
        "endpoint": o.endpoint,
        "service_name": o.service_name,
        "sample_ratio": o.sample_ratio,
    }


OTEL = table(
    "# OpenTelemetry traces, off by default; needs `pip install 'aigw[otel]'`. One span\n"
    "# per request (team, model, provider, status, tokens, cost; never keys or\n"
    '# bodies) with a child span per upstream attempt, sent over OTLP/HTTP. endpoint ""\n'
    "# uses the exporter's defaults and the standard OTEL_* environment variables\n"
    "# (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, ...).",
    OtelConfig,
    _read,
    _write,
)
