"""The compact audit row (migration ``0013_audit_compact``): an event's values as
stored, and the SQL functions the migration converts old events with.

The stored form changes bytes, never an event: the view ``audit`` turns a row back
into the values :mod:`aigw.audit` hashed, so hashes and exports stay the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from aigw.audit import KEYED, PLAIN
from aigw.model import AuditEvent

KINDS = {"proxy": 0, "admin": 1}
ALGS = {PLAIN: 0, KEYED: 1}
# The compact table's columns, in insert order.
COLUMNS = (
    "seq, ts, kind, request_id, key_id, team, app, endpoint, model, provider, "
    "upstream_model, status, prompt_tokens, completion_tokens, cost_nusd, error, scrub, "
    "actor, action, target, before, after, alg, prev_hash, hash"
)
WIDTH = COLUMNS.count(",") + 1
GATEWAY_ID = re.compile(r"req_[0-9a-f]{24}")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


def event_us(ts: float) -> int:
    """An event's microsecond: ``round(ts * 1_000_000)`` (half to even, as
    :func:`~aigw.pipeline.context.new_request_id` mints ids), in the float arithmetic
    the view repeats in SQL, where there is no ``round`` half to even."""
    x = ts * 1_000_000 + 0.5
    up = int(x)
    return up - (x == up and up % 2 == 1)


def pack_request_id(rid: str | None, ts: float) -> str | int | None:
    """A gateway id minted at the event's microsecond: its 44 random bits (the view
    prints the id back from ``ts``); any other id as it is."""
    if rid is not None and GATEWAY_ID.fullmatch(rid) and int(rid[4:17], 16) == event_us(ts):
        return int(rid[17:], 16)
    return rid


def pack_hash(value: Any) -> Any:
    """A hash's 32 bytes when it is 64 lowercase hex digits (the view prints them
    back so); anything else (a damaged or edited value) as it is, so verification
    still sees it."""
    if isinstance(value, str) and _HEX_HASH.fullmatch(value):
        return bytes.fromhex(value)
    return value


def event_names(events: Sequence[AuditEvent]) -> set[str]:
    """The strings ``events`` store as names ids."""
    return {
        v
        for e in events
        for v in (e.key_id, e.team, e.app, e.endpoint, e.model, e.provider, e.upstream_model)
        if v is not None
    }


def encode(event: AuditEvent, names: dict[str, int], prev_hash: bytes | None) -> tuple[Any, ...]:
    """A sealed event as stored; ``prev_hash`` None: the previous event's hash."""
    e = event
    model = e.model
    upstream = e.upstream_model
    return (
        e.seq,
        e.ts,
        KINDS.get(e.kind, e.kind),
        pack_request_id(e.request_id, e.ts),
        None if e.key_id is None else names[e.key_id],
        None if e.team is None else names[e.team],
        None if e.app is None else names[e.app],
        None if e.endpoint is None else names[e.endpoint],
        None if model is None else names[model],
        None if e.provider is None else names[e.provider],
        None if upstream == model else 0 if upstream is None else names[upstream],
        e.status,
        e.prompt_tokens,
        e.completion_tokens,
        e.cost_nusd,
        e.error,
        e.scrub,
        e.actor,
        e.action,
        e.target,
        e.before,
        e.after,
        ALGS[e.alg],
        prev_hash,
        bytes.fromhex(e.hash),
    )


# Registered on the connection that runs migrations (0013 converts old events with them).
SQL_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "aigw_request_id": (2, pack_request_id),
    "aigw_hash": (1, pack_hash),
}
