"""create_app(config): routes, middleware, and one cleanup_ctx per resource."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from aigw import pipeline
from aigw import providers as providers_mod
from aigw.audit import admin_event
from aigw.cache.store import CACHE, ResponseCache
from aigw.config import Config
from aigw.directory import Directory
from aigw.errors import GatewayError, error_body
from aigw.gateway import GATEWAY, Gateway
from aigw.limits.base import Limiter
from aigw.limits.engine import LocalLimiter
from aigw.limits.permissions import ModelPermissions
from aigw.model import AuditEvent, LedgerRecord
from aigw.observe import tracing as tracing_mod
from aigw.observe.metrics import Metrics
from aigw.paths import too_open
from aigw.pipeline import endpoints
from aigw.pipeline.account import Accountant
from aigw.pipeline.context import new_request_id
from aigw.pipeline.route import Router
from aigw.pricing import PriceBook
from aigw.providers.catalog import ModelLists
from aigw.providers.http import new_session
from aigw.retention import SQLitePruner, retention_forever
from aigw.routing.health import LocalHealth
from aigw.store import Database, SQLiteStore
from aigw.store.base import AuditLog, Store
from aigw.store.open import open_store
from aigw.store.sqlite.maintenance import ServingLock
from aigw.store.writer import GroupWriter
from aigw.web import dashboard
from aigw.web import metrics as web_metrics
from aigw.web.auth import SESSIONS, Sessions

log = logging.getLogger("aigw")


def _catalog(prices: PriceBook) -> dict[str, list[str]]:
    """Shipped model names per provider type: what a provider lists until its own
    models endpoint answers (:mod:`aigw.providers.catalog`)."""
    out: dict[str, list[str]] = {}
    for model, family in prices.shipped.providers.items():
        out.setdefault(family, []).append(model)
    return {k: sorted(v) for k, v in out.items()}


CHECKPOINT_SECONDS = 2.0


async def _checkpoints(db: Database) -> None:
    """Keep the WAL short: the ledger's fast connection never checkpoints itself."""
    while True:
        await asyncio.sleep(CHECKPOINT_SECONDS)
        try:
            await db.checkpoint()
        except Exception:  # a busy database only delays the checkpoint
            log.warning("WAL checkpoint failed; will retry", exc_info=True)


PRUNE_SECONDS = 60.0
_clock = time.time  # the body pruner's clock (tests move it forward)


async def _prune_bodies(audit: AuditLog) -> None:
    """Delete audit bodies whose team's retention has passed."""
    while True:
        try:
            gone = await audit.prune_bodies(_clock())
            if gone:
                log.info("deleted %d audit bodies past their retention", gone)
        except Exception:  # a busy database only delays the pruning
            log.warning("pruning audit bodies failed; will retry", exc_info=True)
        await asyncio.sleep(PRUNE_SECONDS)


def _started(config: Config) -> AuditEvent:
    """The audit event of a start: the configuration it loaded (the server does not
    reload it while running; edits made with the CLI are events of their own)."""
    path = config.path
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path else None
    except OSError:
        digest = None
    return admin_event(
        "serve.start",
        str(path) if path else "(default configuration)",
        after={"config_sha256": digest, "providers": sorted(config.providers)},
    )


# The limits engine the pipelines use (Gateway.limiter is the process's local one).
LIMITER = web.AppKey("limiter", object)


def _limiter(store: Store, config: Config) -> Limiter:
    """The in-process limits engine, or the Redis one when ``[counters] url`` is set."""
    if not config.counters.shared:
        return LocalLimiter(store.limit_state, config)
    from aigw.limits.shared import RedisLimiter  # redis is imported only when used

    return RedisLimiter(store.limit_state, config)


def _health(config: Config, limiter: Limiter) -> LocalHealth:
    """Breakers in this process, or shared through the Redis counters' client."""
    client = getattr(limiter, "redis", None)
    if client is None:
        return LocalHealth(config.routing)
    from aigw.routing.shared_health import SharedHealth  # redis is imported only when used

    return SharedHealth(config.routing, client, config.counters.prefix)


def _shared_spend(
    refresh: Callable[[str, list[str]], Awaitable[None]], directory: Directory
) -> Callable[[], Awaitable[None]]:
    """Before a scrape: the budgeted teams' spend as every process shares it."""

    async def before() -> None:
        teams = directory.snapshot.teams
        await refresh("team", [n for n, t in teams.items() if t.limits.budget_nusd is not None])

    return before


def _local(limiter: Limiter) -> LocalLimiter:
    """The process's own engine (with Redis counters: its per-process view of spend)."""
    local = getattr(limiter, "local", limiter)
    assert isinstance(local, LocalLimiter)
    return local


def _lifecycle(
    config: Config, state_file: Path
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        serving = ServingLock(state_file)  # `aigw restore` refuses while it is held
        serving.acquire()
        try:
            store = await open_store(config, state_file, serving=True)
        except BaseException:
            serving.release()
            raise
        # The SQLite state file's own upkeep (None on PostgreSQL).
        db = store.db if isinstance(store, SQLiteStore) else None
        private = [state_file, Path(f"{state_file}-wal"), Path(f"{state_file}-shm")]
        for warning in too_open(*(private if db else []), *([config.path] if config.path else [])):
            log.warning("%s", warning)
        try:
            # Also looks the audit key up, once, here rather than on the first request.
            await store.audit.append([_started(config)])
            directory = Directory(store.keys, store.teams)
            await directory.refresh()
            prices = PriceBook(config.prices)
            # Ledger rows and audit events: one group commit (aigw.pipeline.account).
            writer: GroupWriter[LedgerRecord] = GroupWriter(store.ledger.append_many, name="ledger")
            session = new_session(config.upstream.connect_timeout)
            try:
                provs = providers_mod.build(config, session, _catalog(prices))
                limiter = _limiter(store, config)
                model_lists = ModelLists(provs, config.upstream)
                await limiter.start()
                tracing = tracing_mod.start(config.otel)
                if tracing is not None:
                    app[tracing_mod.TRACING] = tracing
                health = _health(config, limiter)
                metrics = Metrics(
                    health.snapshot,
                    web_metrics.budget_ratios(config, directory, _local(limiter)),
                )
                refresh = getattr(limiter, "refresh_spend", None)
                if refresh is not None:
                    metrics.before_scrape = _shared_spend(refresh, directory)
                cache = ResponseCache(store.cache, config.cache.max_size)
                await cache.start()
                app[CACHE] = cache
                gw = Gateway(
                    config,
                    db,
                    store,
                    directory,
                    writer,
                    Accountant(writer, prices, metrics),
                    prices,
                    session,
                    provs,
                    Router(config, provs),
                    _local(limiter),  # the process's own engine (tests, metrics)
                    ModelPermissions(config.models),
                    health,
                    model_lists,
                    metrics,
                )
                app[GATEWAY] = gw
                app[LIMITER] = limiter
                app[pipeline.PIPELINES] = pipeline.build(
                    config,
                    directory,
                    gw.router,
                    limiter,
                    gw.permissions,
                    prices,
                    gw.accountant,
                    gw.drain,
                    gw.health,
                    cache,
                    tracing,
                )
                ledger_task = gw.spawn(writer.run(), "ledger-writer")
                watcher = gw.spawn(directory.watch(), "directory-watcher")
                listener = gw.spawn(store.listen(directory.changed), "directory-listener")
                limits_task = gw.spawn(limiter.run(), "limiter")
                upkeep = [gw.spawn(c, name) for name, c in store.services()]
                health_run = getattr(health, "run", None)
                if health_run is not None:  # shared breakers: pub/sub and batched outcomes
                    upkeep.append(gw.spawn(health_run(), "breakers"))
                if db is not None:
                    upkeep.append(gw.spawn(_checkpoints(db), "wal-checkpoint"))
                    retention = retention_forever(SQLitePruner(db), config.ledger)
                    upkeep.append(gw.spawn(retention, "ledger-retention"))
                pruner = gw.spawn(_prune_bodies(store.audit), "audit-body-pruner")
                # In the background: a slow provider never delays the start.
                lists_task = gw.spawn(model_lists.run(), "model-lists")
                cache_task = gw.spawn(cache.run(), "response-cache")
                try:
                    yield
                finally:
                    # Every background task is awaited, not just cancelled.
                    await gw.stop(watcher, listener, limits_task, lists_task, pruner, *upkeep)
                    # Drain: every queued ledger row is committed before we exit.
                    writer.close()
                    await ledger_task
                    cache.close()  # drained: answers kept so far reach the state file
                    await cache_task
                    health_close = getattr(health, "close", None)
                    if health_close is not None:  # shared breakers: send what is pending
                        await health_close()
                    await limiter.close()
                    await directory.close()
                    if tracing is not None:
                        tracing.shutdown()  # flushes the spans still queued
            finally:
                await session.close()
        finally:
            await store.close()
            serving.release()

    return ctx


class QuietMalformedRequests(logging.Filter):
    """One short line, no traceback, for each malformed HTTP request aiohttp refuses.

    aiohttp answers a bad header byte or an over-long line with its own 400 and logs
    a traceback at ERROR: any unauthenticated client could flood the log. The
    message is left out too, as it quotes the offending header (maybe a key).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s (%s)"
            record.args = (remote, type(exc).__name__)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_QUIET = QuietMalformedRequests()


@web.middleware
async def inflight_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Track every request in flight, so a shutdown can wait for it (and cut it)."""
    drain = request.app[GATEWAY].drain
    task = drain.enter()
    try:
        return await handler(request)
    finally:
        drain.leave(task)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown routes, wrong methods and unexpected failures answer in the client's
    error envelope (never aiohttp's bare text page)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = GatewayError(
            exc.status,
            f"{request.method} {request.path}: {exc.reason}.",
            code="not_found" if exc.status == 404 else None,
        )
        headers = {"x-request-id": new_request_id()}
        if exc.status == 405 and "Allow" in exc.headers:
            headers["Allow"] = exc.headers["Allow"]
    except ConnectionError:
        raise  # the client is gone; aiohttp drops the connection quietly
    except Exception:
        if request.writer.output_size > 0:
            raise  # a response is under way; a second one cannot follow
        rid = new_request_id()
        log.exception("request %s (%s %s) failed", rid, request.method, request.path)
        err = GatewayError(
            500,
            f"Internal gateway error (request id {rid}).",
            type="server_error",
            code="internal_error",
        )
        headers = {"x-request-id": rid}
    return web.Response(
        status=err.status,
        body=error_body(err, endpoints.wire_of(request)),
        content_type="application/json",
        headers=headers,
    )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"}, headers={"x-request-id": new_request_id()})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the state database answers and the ledger writer runs (and, with
    Redis counters refusing when it is down, Redis answers); the counters' state, the
    circuit breaker of every target called so far."""
    gw = request.app[GATEWAY]
    store = await gw.store.readiness()
    checks: dict[str, str] = {"database": store["database"]}
    alive = any(t.get_name() == "ledger-writer" and not t.done() for t in gw.tasks)
    checks["ledger"] = "ok" if alive else "stopped"
    counters_state = getattr(request.app.get(LIMITER), "counters_state", None)
    counters = counters_state() if counters_state is not None else "in process"
    if counters_state is not None and gw.config.counters.on_unavailable == "refuse":
        # Redis unreachable: limited requests are refused (503), so not ready. With
        # on_unavailable = "local" the process serves on; "counters" below says so.
        checks["counters"] = counters
    # Degraded (PostgreSQL away, ledger rows spooled locally) still serves requests.
    ok = all(v == "ok" or v.startswith("degraded") for v in checks.values())
    degraded = any(v.startswith("degraded") for v in checks.values())
    providers: dict[str, dict[str, object]] = {}
    for n, p in gw.providers.items():
        providers[n] = {"type": p.type, "key": p.key_source or "none"}
        if len(p.keys) > 1:  # a pool: each key's state by position, never the key
            providers[n]["keys"] = [dataclasses.asdict(h) for h in await p.keys.health()]
    body = {
        "status": ("degraded" if degraded else "ready") if ok else "not ready",
        "checks": checks,
        "store": gw.store.kind,
        **({"spooled": store["spooled"]} if "spooled" in store else {}),
        "providers": providers,
        "counters": counters,
        # Circuit breakers of the targets called so far; an open one does not make the
        # gateway unready (other targets may serve).
        "breakers": {t: v.to_json() for t, v in gw.health.snapshot().items()},
    }
    return web.Response(
        status=200 if ok else 503,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"x-request-id": new_request_id()},
    )


def create_app(config: Config, state_file: Path) -> web.Application:
    max_body = int(config.server.max_request_mb * 1024 * 1024)
    server = config.server
    server_log = logging.getLogger("aiohttp.server")
    if _QUIET not in server_log.filters:
        server_log.addFilter(_QUIET)
    app = web.Application(
        client_max_size=max_body,
        middlewares=[inflight_middleware, errors_middleware],
        # aiohttp closes a connection that has not sent a whole request head within
        # keepalive_timeout of opening or of its last response: the header timeout.
        # lingering_time bounds how long a body we did not read is still drained.
        # auto_decompress off: read_raw decodes Content-Encoding itself, so that a bad
        # or unknown encoding is a 4xx in the client's envelope, not a parser error page.
        handler_args={
            "keepalive_timeout": server.header_timeout,
            "lingering_time": min(10.0, server.body_timeout),
            "auto_decompress": False,
        },
    )
    app.cleanup_ctx.append(_lifecycle(config, state_file))
    app[SESSIONS] = Sessions()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", web_metrics.metrics)
    dashboard.add_routes(app)
    app.router.add_post("/v1/chat/completions", endpoints.chat_completions)
    app.router.add_post("/v1/embeddings", endpoints.embeddings)
    app.router.add_post("/v1/responses", endpoints.responses)
    app.router.add_get("/v1/responses", endpoints.responses_websocket)
    app.router.add_post("/v1/messages", endpoints.messages)
    app.router.add_post("/v1/messages/count_tokens", endpoints.count_tokens)
    # Gemini clients: /v1beta/models/{model}:generateContent (google-genai uses /v1/ too),
    # and the model listings, whose /v1/models OpenAI and Anthropic clients share.
    for version in endpoints.GEMINI_VERSIONS:
        app.router.add_get(f"/{version}/models", endpoints.list_models)
        app.router.add_get(f"/{version}/models/{{target:.+}}", endpoints.get_model)
        app.router.add_post(f"/{version}/models/{{target:.+}}", endpoints.gemini_model_method)
    return app
