"""``/dashboard``: a live page of spend, budgets, traffic and provider health.

The page (``static/``: plain HTML, CSS, JavaScript and SVG, nothing fetched from
elsewhere, no build step) polls ``/dashboard/api/summary`` every few seconds. The
totals it shows per team, model and provider are :func:`aigw.report.report_json` --
the very rows ``aigw report --json`` prints for the same range -- and each budget is
:func:`aigw.report.budget_dict`. The extras (time series, latency percentiles, cache
and refusal counts) are read by :mod:`aigw.store.sqlite.dashboard`.

Only an admin key opens it (:mod:`aigw.web.auth`).
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from aigw import report as report_mod
from aigw.gateway import GATEWAY, Gateway
from aigw.model import ADMIN_TEAM
from aigw.pipeline.context import new_request_id
from aigw.store.sqlite import dashboard as dash_sql
from aigw.web.auth import (
    COOKIE,
    SESSIONS,
    AdminDenied,
    admin_of,
    check_admin_key,
    same_origin,
    set_session_cookie,
)
from aigw.web.metrics import denied

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# range -> (seconds, bucket seconds of the time series)
RANGES = {
    "1h": (3600, 60),
    "24h": (86400, 900),
    "7d": (7 * 86400, 7200),
    "30d": (30 * 86400, 43200),
}
MAX_TEAM_CHARS = 100
# Several open dashboards poll every 2 s: within this many seconds they share one
# summary, so the ledger is read once however many tabs are open.
SUMMARY_TTL = 1.0
MAX_CACHED = 64
SUMMARIES = web.AppKey("dashboard_summaries", dict[tuple[str, str | None], tuple[float, bytes]])

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would send `Origin: null` on the login post
    "Cache-Control": "no-store",
}


def _page(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        headers={**SECURITY_HEADERS, "x-request-id": new_request_id()},
    )


def _login_page(message: str | None, status: int) -> web.Response:
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return _html(_page("login.html").replace("<!--MESSAGE-->", note), status)


async def dashboard(request: web.Request) -> web.Response:
    """The page for an admin; the login form for anyone else."""
    gw = request.app[GATEWAY]
    try:
        await admin_of(request, gw.directory, request.app[SESSIONS])
    except AdminDenied as exc:
        has_credentials = "Authorization" in request.headers or COOKIE in request.cookies
        if not has_credentials:
            return _login_page(None, 200)
        return _login_page(exc.message, exc.status)
    return _html(_page("dashboard.html"))


async def login(request: web.Request) -> web.Response:
    """The form posts an admin key; it is traded for a session cookie."""
    gw = request.app[GATEWAY]
    if not same_origin(request):
        return _login_page("This form must be sent from the dashboard's own page.", 403)
    form = await request.post()
    key = form.get("key")
    if not isinstance(key, str) or not key.strip():
        return _login_page("Enter an admin key.", 401)
    try:
        rec = await check_admin_key(gw.directory, key.strip())
    except AdminDenied as exc:
        return _login_page(exc.message, exc.status)
    token = request.app[SESSIONS].open(rec.hash)
    response = web.HTTPSeeOther("/dashboard")
    set_session_cookie(response, token, secure=request.secure)
    response.headers.update(SECURITY_HEADERS)
    raise response


async def logout(request: web.Request) -> web.Response:
    """Forget the session (the key stays valid)."""
    token = request.cookies.get(COOKIE)
    if token and same_origin(request):
        request.app[SESSIONS].close(token)
    response = web.HTTPSeeOther("/dashboard")
    response.del_cookie(COOKIE, path="/")
    raise response


async def asset(request: web.Request) -> web.Response:
    """The page's own script, style and icon (no data: served without a key)."""
    name = request.match_info["name"]
    kind = ASSETS.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=kind,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _bad_request(message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": None}},
        status=400,
        headers={"x-request-id": new_request_id()},
    )


async def summary(request: web.Request) -> web.Response:
    """Everything the page shows, for one range (``?range=1h|24h|7d|30d``), optionally
    narrowed to one team (``?team=``) for the charts and the top lists."""
    gw = request.app[GATEWAY]
    try:
        await admin_of(request, gw.directory, request.app[SESSIONS])
    except AdminDenied as exc:
        return denied(exc)
    rng = request.query.get("range", "24h")
    if rng not in RANGES:
        return _bad_request(f"range must be one of {', '.join(RANGES)}")
    team = request.query.get("team") or None
    if team is not None and (len(team) > MAX_TEAM_CHARS or not team.isprintable()):
        return _bad_request("not a team name")
    cache = request.app[SUMMARIES]
    now = time.monotonic()
    cached = cache.get((rng, team))
    if cached is not None and now - cached[0] < SUMMARY_TTL:
        body = cached[1]
    else:
        body = orjson.dumps(await build_summary(gw, rng, team, time.time()))
        if len(cache) >= MAX_CACHED:
            cache.clear()
        cache[(rng, team)] = (now, body)
    return web.Response(
        body=body,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "x-request-id": new_request_id()},
    )


async def build_summary(gw: Gateway, rng: str, team: str | None, now: float) -> dict[str, Any]:
    """The summary of ``rng`` ending at ``now`` (see :func:`summary`)."""
    span, bucket = RANGES[rng]
    since, until = now - span, now
    cfg, store = gw.config, gw.store
    teams = await report_mod.report_json(store, cfg, by="team", since=since, until=until, now=now)
    if team is None:
        models = await report_mod.report_json(
            store, cfg, by="model", since=since, until=until, now=now
        )
        providers = await report_mod.report_json(
            store, cfg, by="provider", since=since, until=until, now=now
        )
    else:
        models = [
            report_mod.row_dict(r, "model")
            for r in await store.dashboard.team_groups("model", team, since, until)
        ]
        providers = [
            report_mod.row_dict(r, "provider")
            for r in await store.dashboard.team_groups("provider", team, since, until)
        ]
    extras = await store.dashboard.team_extras(since, until)
    minutes = span / 60
    for row in teams:
        row["live"] = _live(extras.get(row["name"]), row["requests"], row["errors"], minutes)
    budgets = []
    for b in await report_mod.budgets(store, cfg, now):
        if b.scope != "team":
            continue
        rec = gw.directory.team(b.name)
        alert_at = rec.limits.alert_at if rec is not None else None
        thresholds = list(cfg.budgets.alert_at) if alert_at is None else list(alert_at)
        budgets.append({**report_mod.budget_dict(b), "thresholds": thresholds})
    points = await store.dashboard.series(since, until, bucket, team)
    total_requests = sum(r["requests"] for r in teams)
    total_errors = sum(r["errors"] for r in teams)
    total = {
        "requests": total_requests,
        "errors": total_errors,
        "prompt_tokens": sum(r["prompt_tokens"] for r in teams),
        "completion_tokens": sum(r["completion_tokens"] for r in teams),
        "cost_usd": report_mod.money(sum(r["cost_nusd"] or 0 for r in teams)),
        "cost_nusd": sum(r["cost_nusd"] or 0 for r in teams),
        "unpriced_requests": sum(r["unpriced_requests"] for r in teams),
        "live": _live(extras.get(dash_sql.ALL), total_requests, total_errors, minutes),
    }
    return {
        "range": rng,
        "team": team,
        "since": _iso(since),
        "until": _iso(until),
        "generated_at": _iso(now),
        "teams": teams,
        "total": total,
        "budgets": budgets,
        "models": models[:10],
        "providers": providers[:10],
        "series": {
            "bucket_seconds": bucket,
            "since": since,
            "until": until,
            "points": [
                {
                    "t": p.start,
                    "requests": p.requests,
                    "errors": p.errors,
                    "tokens": p.tokens,
                    "cost_usd": report_mod.money(p.cost_nusd),
                }
                for p in points
            ],
        },
        "health": _health(gw),
        "team_names": sorted(
            ({r["name"] for r in teams} | set(gw.directory.snapshot.teams)) - {ADMIN_TEAM}
        ),
    }


def _live(
    x: dash_sql.TeamExtras | None, requests: int, errors: int, minutes: float
) -> dict[str, Any]:
    x = x or dash_sql.TeamExtras(None, None, 0, 0, 0, 0)
    return {
        "requests_per_minute": round(requests / minutes, 3),
        "error_rate": round(errors / requests, 4) if requests else None,
        "p50_ms": x.p50_ms,
        "p95_ms": x.p95_ms,
        "cache_lookups": x.cache_lookups,
        "cache_hits": x.cache_hits,
        "cache_hit_rate": round(x.cache_hits / x.cache_lookups, 4) if x.cache_lookups else None,
        "saved_usd": report_mod.money(x.saved_nusd),
        "limit_refusals": x.refused,
    }


def _health(gw: Gateway) -> dict[str, Any]:
    breakers = gw.health.snapshot()
    return {
        "providers": [
            {"name": name, "type": p.type, "key": p.key_source or "none"}
            for name, p in sorted(gw.providers.items())
        ],
        "targets": [{"target": t, **v.to_json()} for t, v in breakers.items()],
    }


def add_routes(app: web.Application) -> None:
    app[SUMMARIES] = {}
    app.router.add_get("/dashboard", dashboard)
    app.router.add_post("/dashboard/login", login)
    app.router.add_post("/dashboard/logout", logout)
    app.router.add_get("/dashboard/api/summary", summary)
    app.router.add_get("/dashboard/static/{name}", asset)
