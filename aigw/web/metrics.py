"""``GET /metrics``: the Prometheus text format of :class:`aigw.observe.metrics.Metrics`.

Open to peers on the gateway's own machine (loopback) unless ``[metrics]
require_admin_key = true``; any other peer must send an admin key. So a gateway bound
to ``0.0.0.0`` does not publish its teams' spend to the network by default.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from aiohttp import web

from aigw.config import Config
from aigw.directory import Directory
from aigw.errors import GatewayError, Wire, error_body
from aigw.gateway import GATEWAY
from aigw.limits.engine import LocalLimiter
from aigw.observe.metrics import CONTENT_TYPE
from aigw.pipeline.context import new_request_id
from aigw.web.auth import SESSIONS, AdminDenied, admin_of


def is_loopback(remote: str | None) -> bool:
    """Whether the peer address is this machine's (127.0.0.0/8, ::1, ::ffff:127.x)."""
    if not remote:
        return False
    try:
        ip = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def denied(exc: AdminDenied) -> web.Response:
    """An admin endpoint's refusal, in the OpenAI error envelope."""
    err = GatewayError(
        exc.status,
        exc.message,
        type="authentication_error" if exc.status == 401 else "permission_error",
        code="invalid_api_key" if exc.status == 401 else "admin_key_required",
    )
    return web.Response(
        status=exc.status,
        body=error_body(err, Wire.OPENAI),
        content_type="application/json",
        headers={"x-request-id": new_request_id(), "Cache-Control": "no-store"},
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus scrape: counters kept in memory, formatted on demand."""
    gw = request.app[GATEWAY]
    if gw.config.metrics.require_admin_key or not is_loopback(request.remote):
        try:
            await admin_of(request, gw.directory, request.app[SESSIONS])
        except AdminDenied as exc:
            return denied(exc)
    if gw.metrics.before_scrape is not None:
        await gw.metrics.before_scrape()
    return web.Response(
        body=gw.metrics.exposition(),
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"},
    )


def budget_ratios(
    config: Config, directory: Directory, limiter: LocalLimiter
) -> Callable[[], list[tuple[str, float]]]:
    """Each budgeted team's spend over budget in its current period, from the limits
    engine's memory (no query)."""

    def ratios() -> list[tuple[str, float]]:
        now = time.time()
        out: list[tuple[str, float]] = []
        for name, team in directory.snapshot.teams.items():
            budget = team.limits.budget_nusd
            if budget is None:
                continue
            period = limiter.calendar.period(team.limits.period or config.budgets.period, now)
            spent = limiter.spend_of("team", name).total(period)
            out.append((name, spent / budget if budget else float(spent > 0)))
        return out

    return ratios
