"""Per-request routing constraints: the caller's regions narrowed by ``x-aigw-route``.

A request may narrow its own routing with the header ``x-aigw-route``, a JSON object::

    {"region": "eu", "max_cost_usd_per_mtok": 5, "strategy": "cost"}

``region`` (a string or a list) and ``max_cost_usd_per_mtok`` (a model's pricier
rate, input or output, in USD per million tokens) only ever narrow what the key
allows; ``strategy`` (failover | weighted | latency | cost) is a preference for the
router. The header is hostile input: size-capped, strictly typed, unknown fields
refused with 400 ``invalid_route_header``.

:func:`check_target` says why one target may not serve the request (region, cost,
capability) and :func:`no_target` is the answer when every target was refused; the
router calls both, a single-target route answers with the second at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson

from aigw.config.capabilities import Capabilities
from aigw.errors import GatewayError
from aigw.model import region_problem
from aigw.pricing import Price, format_usd
from aigw.routing.capabilities import Requirements, unfit
from aigw.routing.regions import Regions, names, narrow, region_allows

ROUTE_HEADER = "x-aigw-route"
MAX_ROUTE_HEADER = 1024  # bytes; a real one is a few dozen
MAX_REGIONS = 16
STRATEGIES = ("failover", "weighted", "latency", "cost")
_FIELDS = frozenset({"region", "max_cost_usd_per_mtok", "strategy"})


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a request's ``x-aigw-route`` asked for (None: not asked)."""

    regions: frozenset[str] | None = None
    max_cost_micro: int | None = None  # micro-USD per million tokens
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class Constraints:
    """What the router must respect for one request."""

    regions: Regions = None  # where it may go: the caller's, narrowed by the header
    caller_regions: Regions = None  # what the key (or its team) allows
    asked_regions: frozenset[str] | None = None  # what the header asked for
    max_cost_micro: int | None = None
    strategy: str | None = None  # the header's preference; the route's applies if None


NO_CONSTRAINTS = Constraints()


def _invalid(problem: str) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid {ROUTE_HEADER} header: {problem}. Expected a JSON object such as "
        '{"region": "eu", "max_cost_usd_per_mtok": 5, "strategy": "cost"}.',
        code="invalid_route_header",
        param=ROUTE_HEADER,
    )


def parse_route_header(value: str | None) -> RouteRequest | None:
    """The header's request, or None when it was not sent; 400 when it is malformed."""
    if value is None:
        return None
    if len(value) > MAX_ROUTE_HEADER:
        raise _invalid(f"longer than {MAX_ROUTE_HEADER} bytes")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _invalid("not JSON") from None
    if not isinstance(data, dict):
        raise _invalid("not a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        # Field names are client text: quoted through repr, cut short.
        raise _invalid(f"unknown field {unknown[0][:40]!r} (known: {', '.join(sorted(_FIELDS))})")
    return RouteRequest(
        _regions(data.get("region")), _max_cost(data.get("max_cost_usd_per_mtok")), _strategy(data)
    )


def _regions(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > MAX_REGIONS:
        raise _invalid(f"region must be a string or a list of 1 to {MAX_REGIONS} strings")
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str) or region_problem(item) is not None:
            raise _invalid("region names are 1-64 letters, digits, '.', '_' or '-'")
        out.add(item.lower())
    return frozenset(out)


def _max_cost(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid("max_cost_usd_per_mtok must be a number")
    try:
        usd = Decimal(str(value))
    except InvalidOperation:
        raise _invalid("max_cost_usd_per_mtok must be a number") from None
    if not usd.is_finite() or usd < 0 or usd > 1_000_000:
        raise _invalid("max_cost_usd_per_mtok must be a number from 0 to 1000000")
    return int(usd * 1_000_000)  # micro-USD, rounded down: a ceiling stays a ceiling


def _strategy(data: dict[str, object]) -> str | None:
    value = data.get("strategy")
    if value is None:
        return None
    if value not in STRATEGIES:
        raise _invalid(f"strategy must be one of {', '.join(STRATEGIES)}")
    assert isinstance(value, str)
    return value


def constraints(caller_regions: Regions, asked: RouteRequest | None) -> Constraints:
    """The request's constraints: the caller's regions narrowed by the header's."""
    if asked is None:
        if caller_regions is None:
            return NO_CONSTRAINTS
        return Constraints(caller_regions, caller_regions)
    return Constraints(
        narrow(caller_regions, asked.regions),
        caller_regions,
        asked.regions,
        asked.max_cost_micro,
        asked.strategy,
    )


# -- one target ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """Why one target may not serve a request."""

    provider: str
    region: str | None
    kind: str  # region | max_cost | a Misfit kind (context_window, tools, vision...)
    message: str


def rate(price: Price) -> int:
    """A price's pricier rate, input or output, in micro-USD per million tokens."""
    return max(price.base.input, price.base.output)


def check_target(
    c: Constraints,
    provider: str,
    region: str | None,
    price: Price | None,
    caps: Capabilities,
    req: Requirements | None,
) -> Skip | None:
    """Why the target (``provider`` in ``region``, priced ``price``, able to do
    ``caps``) may not serve the request, or None. Region first: it is never waived.
    ``req`` None skips the capability check."""
    if not region_allows(c.regions, region):
        where = f"region {region}" if region else "no region"
        return Skip(provider, region, "region", f"provider '{provider}' is in {where}")
    if c.max_cost_micro is not None:
        if price is None:
            return Skip(provider, region, "max_cost", f"provider '{provider}': no known price")
        if rate(price) > c.max_cost_micro:
            return Skip(
                provider,
                region,
                "max_cost",
                f"provider '{provider}' costs {format_usd(rate(price) * 1000, 2)} USD per "
                "million tokens",
            )
    if req is not None:
        misfit = unfit(caps, req)
        if misfit is not None:
            return Skip(provider, region, misfit.kind, f"provider '{provider}': {misfit.message}")
    return None


def no_target(skips: Sequence[Skip], c: Constraints) -> GatewayError:
    """The client's error when every target was refused (``skips``: one per target)."""
    if skips and all(s.kind == "region" for s in skips):
        where = "; ".join(s.message for s in skips)
        if c.asked_regions is not None and c.caller_regions is not None and not c.regions:
            message = (
                f"{ROUTE_HEADER} asks for the regions {names(c.asked_regions)}, but this key "
                f"may only use providers in {names(c.caller_regions)}."
            )
        else:
            allowed = c.regions if c.regions is not None else frozenset()
            message = (
                f"This request may only go to providers in the regions {names(allowed)}, "
                f"and no target of this model is in one ({where})."
            )
        return GatewayError(
            403, message, type="permission_error", code="region_not_allowed", param="model"
        )
    relevant = [s for s in skips if s.kind != "region"] or list(skips)
    first = relevant[0]
    why = "; ".join(s.message for s in relevant)
    if first.kind == "max_cost":
        assert c.max_cost_micro is not None
        return GatewayError(
            400,
            f"No target of this model is within the {ROUTE_HEADER} max_cost_usd_per_mtok of "
            f"{format_usd(c.max_cost_micro * 1000, 2)} ({why}).",
            code="max_cost_exceeded",
            param=ROUTE_HEADER,
        )
    code = "context_length_exceeded" if first.kind == "context_window" else "unsupported_capability"
    return GatewayError(
        400,
        f"No target of this model can serve this request: {why}.",
        code=code,
        param="messages" if first.kind == "context_window" else None,
    )
