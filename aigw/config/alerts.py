"""``[alerts]``: where budget alerts go besides the log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class AlertsConfig:
    """Where budget alerts go besides the log (and `aigw report`)."""

    # JSON POST with a Slack-compatible "text" field; "" = log only. The environment
    # variable AIGW_ALERTS_WEBHOOK_URL overrides it (webhook URLs are often secret).
    webhook_url: str = ""
    timeout: float = 10.0  # seconds per attempt
    retries: int = 5  # further attempts after a failure, with exponential backoff
    queue_size: int = 1000  # alerts waiting for delivery; more are logged and dropped


def _read(r: Reader) -> AlertsConfig:
    d = AlertsConfig()
    cfg = AlertsConfig(
        webhook_url=r.get("webhook_url", str, d.webhook_url),
        timeout=r.number("timeout", d.timeout, minimum=0.001),
        retries=r.get("retries", int, d.retries),
        queue_size=r.get("queue_size", int, d.queue_size),
    )
    if cfg.webhook_url and not cfg.webhook_url.startswith(("http://", "https://")):
        r.fail("webhook_url", "must start with http:// or https://")
    if not 0 <= cfg.retries <= 20:
        r.fail("retries", f"must be between 0 and 20 (got {cfg.retries})")
    if cfg.queue_size < 1:
        r.fail("queue_size", f"must be at least 1 (got {cfg.queue_size})")
    return cfg


def _write(al: AlertsConfig) -> dict[str, Any]:
    return {
        "webhook_url": al.webhook_url,
        "timeout": al.timeout,
        "retries": al.retries,
        "queue_size": al.queue_size,
    }


ALERTS = table(
    "# Budget alerts are logged, flagged in `aigw report` and, with webhook_url, POSTed\n"
    '# as JSON with a Slack-compatible "text" field (retried with backoff, never\n'
    "# blocking requests). AIGW_ALERTS_WEBHOOK_URL overrides webhook_url.",
    AlertsConfig,
    _read,
    _write,
)
