"""The per-request context the lifecycle steps share, and the headers it answers with."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from aigw.errors import Wire
from aigw.formats import Call, ClientFormat
from aigw.headers import header_value
from aigw.limits.base import Lease
from aigw.model import KeyRecord, TeamRecord
from aigw.pricing import format_usd
from aigw.usage import Usage

if TYPE_CHECKING:
    from aigw.routing.constraints import Constraints
    from aigw.routing.targets import ModelRoute, Target
    from aigw.scrub.restore import Restorer
    from aigw.sse import Event


CLIENT_GONE = 499  # nginx's convention for "client closed the connection"

# What a client-sent x-request-id may be to be kept: anything else is ignored (and a
# fresh id minted), so it never reaches a response header or the ledger.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_random = random.Random(int.from_bytes(os.urandom(16), "big"))


def new_request_id(ts: float | None = None) -> str:
    """``req_`` and 24 hex digits: the call's time in microseconds (13 digits), then 44
    random bits. The ledger finds a row by the time in its id, so these ids need no
    index there (:mod:`aigw.store.sqlite.ledger`); the audit log's request-id index
    grows at its right edge (a page per commit, not a random page per row)."""
    # Random bits from a seeded PRNG: no syscall per request as os.urandom would cost.
    us = round((time.time() if ts is None else ts) * 1_000_000)
    return f"req_{us & 0xFFFFFFFFFFFFF:013x}{_random.getrandbits(44):011x}"


def client_request_id(request: web.Request | None) -> str | None:
    """The client's ``x-request-id`` when it is sane (1-128 of ``[A-Za-z0-9._:-]``)."""
    if request is None:
        return None
    value = request.headers.get("x-request-id")
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


@dataclass(slots=True)
class Attempt:
    """One failed attempt at a target: what went wrong, and what the provider billed."""

    target: str  # provider/model
    status: int  # what the client would have seen
    code: str | None
    kind: str  # connect | timeout | status | cut | stream (aigw.routing.retry)
    usage: Usage | None = None
    cost_nusd: int | None = None


class StreamTap(Protocol):
    """Sees every upstream event of a relayed stream (the response cache)."""

    def feed(self, event: Event) -> None: ...

    def done(self, ctx: Context) -> None:
        """The stream ended complete and its ledger row is committed."""
        ...


class Planned(Protocol):
    """What the steps before the cache concluded for an identical earlier call
    (:class:`aigw.cache.plans.Plan`)."""

    @property
    def cache_key(self) -> str: ...


class Capture(Protocol):
    """Takes the final answer of a call to keep it (the response cache's miss path)."""

    def json(self, ctx: Context, answer: dict[str, Any] | bytes) -> None:
        """A JSON answer, recorded: in the hub format (chat) or as sent (bytes)."""
        ...

    def stream(self, ctx: Context) -> StreamTap | None: ...


@dataclass(slots=True)
class Context:
    """Who is calling, what was asked, where it went and what it cost."""

    wire: Wire
    endpoint: str  # as the ledger names it
    request: web.Request | None = None
    # What the endpoint asks of the steps: how to read its body, which client format
    # answers (chat calls), whether the call is billed (a count or a listing is not).
    parse: Callable[[Any], Call] | None = None
    fmt: ClientFormat | None = None
    billed: bool = True
    request_id: str = ""  # set after init: the client's own, or one minted from ts
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    key: KeyRecord | None = None
    team: TeamRecord | None = None  # the key's team record, read once at authentication
    call: Call | None = None
    raw_body: bytes | None = None  # as it arrived (decompressed)
    # The body, route and scrub steps' work, restored from an earlier identical call
    # answered from the cache (aigw.cache.plans); those steps then do nothing.
    plan: Planned | None = None
    body: dict[str, Any] | None = None
    model: str | None = None  # as the client asked for it
    stream: bool = False
    route: ModelRoute | None = None
    # The targets this call may try, in order, and those left out with the reason.
    candidates: tuple[Target, ...] | list[Target] = ()
    skipped: list[tuple[Target, str]] = field(default_factory=list)
    target: Target | None = None  # the one being tried, then the one that answered
    tries: int = 0  # upstream attempts made
    attempts: list[Attempt] = field(default_factory=list)  # the failed ones
    first_byte: float | None = None  # perf_counter when the answer's first content came
    # What routing must respect: the caller's regions narrowed by x-aigw-route.
    constraints: Constraints | None = None
    # Estimates for admission, before the provider has counted anything.
    prompt_estimate: int = 0
    prompt_bound: int = 0  # never less than the provider can bill: budgets reserve it
    max_output: int | None = None  # the client's max_tokens, if it set one
    lease: Lease | None = None
    upstream_called: bool = False  # the provider got the request (so it may bill it)
    upstream_request_id: str | None = None  # the provider's own id for the call
    status: int = 200
    usage: Usage | None = None
    usage_estimated: bool = False
    cost_nusd: int | None = None
    error: str | None = None
    recorded: bool = False  # its ledger row is committed or being committed
    warnings: list[str] = field(default_factory=list)
    # What the scrub step found, per detector (redacted, blocked or only counted).
    scrub_counts: dict[str, int] = field(default_factory=dict)
    # Puts redacted values back into the answer (JSON or stream), whoever produced it.
    restorer: Restorer | None = None
    # The audit log's bodies, for a team that opted in (seconds to keep them; None:
    # not kept): the request as sent upstream, the answer as the provider sent it.
    body_retention: float | None = None
    sent_body: Any = None
    answer_chunks: list[bytes] | None = None
    cache: str | None = None  # hit | miss | bypass (None: the cache did not look)
    saved_nusd: int = 0  # a cache hit: what the original call cost
    capture: Capture | None = None  # set by the cache step on a miss it may store
    response: web.StreamResponse | None = None  # set by the step that answers
    trace: Any = None  # the request's OpenTelemetry span, when [otel] is on

    def __post_init__(self) -> None:
        # Kept as sent, so the client's own id finds its ledger row. Not unique: two
        # calls with the same id get two rows (by_request_id returns both).
        if not self.request_id:
            client_id = client_request_id(self.request)
            self.request_id = new_request_id(self.ts) if client_id is None else client_id

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


def base_headers(ctx: Context) -> dict[str, str]:
    """The headers every answer carries: request id, target, limits, warnings."""
    headers = {"x-request-id": ctx.request_id}
    target = ctx.target
    if target is not None:
        headers["x-aigw-provider"] = target.provider_header
        # Client-chosen (PROVIDER/MODEL) or from the config: made header-safe once.
        headers["x-aigw-model"] = headers["x-aigw-upstream-model"] = target.model_header
        if ctx.tries:
            headers["x-aigw-attempts"] = str(ctx.tries)
    if ctx.upstream_request_id is not None:
        headers["x-aigw-upstream-request-id"] = header_value(ctx.upstream_request_id, 256)
    if ctx.lease is not None:
        headers.update(ctx.lease.headers())
    if ctx.cache is not None:
        headers["x-aigw-cache"] = ctx.cache
    if ctx.warnings:
        # Warnings quote client-chosen parameter names.
        headers["x-aigw-warning"] = header_value("; ".join(ctx.warnings), 2048)
    return headers


def cost_header(ctx: Context) -> str:
    return format_usd(ctx.cost_nusd, 9)
