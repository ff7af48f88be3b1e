"""``[metrics]``: who may scrape ``GET /metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class MetricsConfig:
    # False: a scraper on the gateway's own machine (a loopback peer) needs no key;
    # any other peer must send an admin key. True: every scrape needs an admin key.
    require_admin_key: bool = False


def _read(r: Reader) -> MetricsConfig:
    return MetricsConfig(require_admin_key=r.get("require_admin_key", bool, False))


def _write(m: MetricsConfig) -> dict[str, Any]:
    return {"require_admin_key": m.require_admin_key}


METRICS = table(
    "# GET /metrics (Prometheus): open to scrapers on this machine (loopback); any\n"
    "# other peer must send an admin key (aigw keys create --admin) as\n"
    "# 'Authorization: Bearer'. require_admin_key = true asks loopback peers for one too.",
    MetricsConfig,
    _read,
    _write,
)
