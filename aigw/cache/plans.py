"""Hit plans: what the steps before the cache worked out for a request that hit,
kept so that the same request from the same key skips that work next time.

A cache hit repeats a request byte for byte (evals, tests, retries, many users asking
the same thing). Reading the body, routing, scrubbing and keying it gave the same
answer the last time and will give it again, as long as nothing they read has
changed: the bytes of the body, the path, the few headers they look at, and the
key's and team's records (permissions, regions, scrub and cache policy; a directory
reload replaces them, which retires every plan made with the old ones). A
:class:`Plan` is what those steps left in the context, taken when a call was
answered from the cache; :meth:`Plans.find` gives it back for the next request with
the same identity, and the body, route and scrub steps then only restore it.

Admission is never planned: every call is counted against its limits. A plan does
not say the answer is still cached: the cache step looks it up as always, and if it
is gone the call goes on from a freshly parsed body (:func:`fresh_call`), as any miss.

Not planned: a call whose scrub step redacted something (its restorer is per call),
and one whose route ordering depends on chance or on measured latency.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from aigw.formats import Call
from aigw.model import KeyRecord, TeamRecord

if TYPE_CHECKING:
    from aiohttp import web

    from aigw.pipeline.context import Context, Planned
    from aigw.routing.constraints import Constraints
    from aigw.routing.targets import ModelRoute, Target

# The request headers the steps before the cache read (body, route, cache control);
# _ident reads each of them by position.
HEADERS = ("Content-Encoding", "x-aigw-route", "Cache-Control", "x-aigw-cache-ttl")
# Route strategies whose order is not a function of the request alone.
_UNSTABLE = frozenset({"weighted", "latency"})
MAX_PLANS = 2048
MAX_BODY = 256 * 1024  # a larger body is not planned (a plan holds its parsed body)
MAX_BYTES = 64 * 1024 * 1024  # the bodies all plans hold, at most

Ident = tuple[str, str, str, bytes, tuple[str | None, ...]]


@dataclass(slots=True, frozen=True)
class Plan:
    """The context the body, route and scrub steps left for one request."""

    ident: Ident
    key: KeyRecord
    team: TeamRecord | None
    cache_key: str
    size: int
    call: Call
    route: ModelRoute | None
    constraints: Constraints | None
    candidates: tuple[Target, ...]
    skipped: tuple[tuple[Target, str], ...]
    target: Target | None
    prompt_bound: int
    warnings: tuple[str, ...]
    scrub_counts: tuple[tuple[str, int], ...]

    def apply(self, ctx: Context) -> None:
        """Put the planned values into ``ctx`` (the body, route and scrub steps' work)."""
        call = self.call
        ctx.plan = self
        ctx.call, ctx.model, ctx.stream, ctx.body = call, call.model, call.stream, call.body
        ctx.prompt_estimate, ctx.max_output = call.prompt_estimate, call.max_output
        ctx.prompt_bound = self.prompt_bound
        ctx.route, ctx.constraints = self.route, self.constraints
        ctx.candidates, ctx.target = self.candidates, self.target
        if self.skipped:
            ctx.skipped.extend(self.skipped)
        if self.warnings:
            ctx.warnings.extend(self.warnings)
        if self.scrub_counts:
            ctx.scrub_counts.update(self.scrub_counts)


def _ident(ctx: Context, request: web.Request, raw: bytes) -> Ident:
    key = ctx.key
    assert key is not None
    get = request.headers.get
    return (
        key.id,
        ctx.endpoint,
        request.path_qs,
        hashlib.blake2b(raw, digest_size=20).digest(),
        (get(HEADERS[0]), get(HEADERS[1]), get(HEADERS[2]), get(HEADERS[3])),
    )


class Plans:
    """Plans by request identity, oldest out first (count and bytes bounded)."""

    def __init__(self) -> None:
        self.plans: dict[Ident, Plan] = {}
        self.keys: dict[str, int] = {}  # key id -> plans it has: most keys have none
        self.bytes = 0
        self.used = 0  # requests that restored a plan (for tests and stats)

    def find(self, ctx: Context, raw: bytes) -> Plan | None:
        """The plan for this request, if one was made under the same key and team
        records (an older one is dropped)."""
        key, request = ctx.key, ctx.request
        if key is None or request is None or key.id not in self.keys or len(raw) > MAX_BODY:
            return None
        ident = _ident(ctx, request, raw)
        plan = self.plans.get(ident)
        if plan is None:
            return None
        if plan.key is not key or plan.team is not ctx.team:
            self._drop(ident)  # the key or its team changed since: plan again
            return None
        self.used += 1
        return plan

    def make(self, ctx: Context, cache_key: str) -> Plan | None:
        """A plan of the request in ``ctx`` as the cache step found it, if it may be
        planned (:meth:`add` it once the call was answered from the cache)."""
        key, request, call, raw = ctx.key, ctx.request, ctx.call, ctx.raw_body
        if (
            key is None
            or request is None
            or call is None
            or raw is None
            or len(raw) > MAX_BODY
            or ctx.plan is not None
            or ctx.restorer is not None
            or not _stable(ctx)
        ):
            return None
        return Plan(
            ident=_ident(ctx, request, raw),
            key=key,
            team=ctx.team,
            cache_key=cache_key,
            size=len(raw),
            call=call,
            route=ctx.route,
            constraints=ctx.constraints,
            candidates=tuple(ctx.candidates),
            skipped=tuple(ctx.skipped),
            target=ctx.target,
            prompt_bound=ctx.prompt_bound,
            warnings=tuple(ctx.warnings),
            scrub_counts=tuple(ctx.scrub_counts.items()),
        )

    def add(self, plan: Plan) -> None:
        if plan.ident in self.plans:
            return
        while self.plans and (len(self.plans) >= MAX_PLANS or self.bytes + plan.size > MAX_BYTES):
            self._drop(next(iter(self.plans)))
        self.plans[plan.ident] = plan
        key_id = plan.key.id
        self.keys[key_id] = self.keys.get(key_id, 0) + 1
        self.bytes += plan.size

    def forget(self, plan: Planned) -> None:
        """Drop ``plan`` (its answer left the cache)."""
        if isinstance(plan, Plan) and self.plans.get(plan.ident) is plan:
            self._drop(plan.ident)

    def clear(self) -> None:
        self.plans.clear()
        self.keys.clear()
        self.bytes = 0

    def _drop(self, ident: Ident) -> None:
        plan = self.plans.pop(ident)
        self.bytes -= plan.size
        left = self.keys[ident[0]] - 1
        if left:
            self.keys[ident[0]] = left
        else:
            del self.keys[ident[0]]


def _stable(ctx: Context) -> bool:
    """Whether routing this call again would give the same candidates."""
    route = ctx.route
    if route is None or len(route.targets) <= 1:
        return True
    c = ctx.constraints
    strategy = (c.strategy if c is not None else None) or route.strategy
    return strategy not in _UNSTABLE


def fresh_call(ctx: Context) -> None:
    """A planned call whose answer is no longer cached goes upstream like any miss:
    from its own freshly parsed body (a plan's is shared by the calls that used it;
    the bytes are those that parsed and validated when the plan was made)."""
    assert ctx.parse is not None and ctx.raw_body is not None
    ctx.call = call = ctx.parse(orjson.loads(ctx.raw_body))
    ctx.body = call.body
    ctx.plan = None
