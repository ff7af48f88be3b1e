"""The compact audit row (migration ``0013_audit_compact``): an event's values as
stored, and the SQL functions the migration converts old events with.

The stored form changes bytes, never an event: the view ``audit`` turns a row back
into the values :mod:`aigw.audit` hashed, so hashes and exports stay the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from aigw.audit import KEYED, PLAIN
from aigw.model import AuditEvent
from aigw.store.sqlite.binds import NULL

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
_RANDOM = (1 << 44) - 1


def event_us(ts: float) -> int:
    """An event's microsecond: ``round(ts * 1_000_000)``, half to even, as
    :func:`~aigw.pipeline.context.new_request_id` mints ids (the view repeats it in
    SQL's float arithmetic, where there is no ``round`` half to even)."""
    return round(ts * 1_000_000)


def pack_request_id(rid: str | None, ts: float) -> str | int | None:
    """A gateway id minted at the event's microsecond: its 44 random bits (the view
    prints the id back from ``ts``); any other id as it is."""
    if rid is not None and GATEWAY_ID.fullmatch(rid):
        bits = int(rid[4:], 16)  # one parse: time << 44 | random
        if bits >> 44 == round(ts * 1_000_000):
            return bits & _RANDOM
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


_NAMED = attrgetter("key_id", "team", "app", "endpoint", "model", "provider", "upstream_model")
_PLAIN = attrgetter(
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cost_nusd",
    "error",
    "scrub",
    "actor",
    "action",
    "target",
    "before",
    "after",
)


def encode_into(
    params: list[object],
    events: Sequence[AuditEvent],
    names: dict[str, int],
    first_prev: bytes | str | None,
) -> None:
    """Append sealed ``events``' stored values to ``params``, in :data:`COLUMNS`
    order. ``first_prev``: the first event's stored prev_hash (None: the previous
    event's hash, as every later one's is). Inlined: this runs for every call. Values
    that are usually None bind as :data:`~aigw.store.sqlite.binds.NULL`, hashes as
    bytearray (no adapter lookup for either)."""
    prev = NULL if first_prev is None else first_prev
    kinds, algs, pack, fromhex = KINDS, ALGS, pack_request_id, bytearray.fromhex
    for e in events:
        key, team, app, endpoint, model, provider, upstream = _NAMED(e)
        ts = e.ts
        params.extend(
            (
                e.seq,
                ts,
                kinds.get(e.kind, e.kind),
                pack(e.request_id, ts),
                NULL if key is None else names[key],
                NULL if team is None else names[team],
                NULL if app is None else names[app],
                NULL if endpoint is None else names[endpoint],
                NULL if model is None else names[model],
                NULL if provider is None else names[provider],
                NULL if upstream == model else 0 if upstream is None else names[upstream],
            )
        )
        # Mostly None (an admin change's fields in a proxied call's event, and back).
        params.extend([NULL if v is None else v for v in _PLAIN(e)])
        params.extend((algs[e.alg], prev, fromhex(e.hash)))
        prev = NULL


# Registered on the connection that runs migrations (0013 converts old events with them).
SQL_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "aigw_request_id": (2, pack_request_id),
    "aigw_hash": (1, pack_hash),
}
