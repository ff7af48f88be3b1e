"""The audit trail's chain: canonical events, SHA-256 or HMAC hashes, verification.

Every event (a proxied call or an admin change, :class:`~aigw.model.AuditEvent`) is
written with ``hash = H(prev_hash, canonical(event))``, where ``canonical`` is the
event's JSON with sorted keys (its sequence number included) and ``prev_hash`` the
hash of the event before it (:data:`GENESIS` for the first). The table
``audit_head`` keeps the last sequence number and hash.

What each mode protects against:

* **Plain SHA-256** (no key): editing, deleting or reordering events by hand, a
  partial restore, a bad disk or a buggy tool all break the chain, and
  ``aigw audit verify`` names the first event that does not verify. It does not
  stop someone with write access to the state file who recomputes every hash after
  their edit: the algorithm is public.
* **HMAC-SHA-256** (a key in ``AIGW_AUDIT_KEY`` or the keyring, ``aigw audit
  set-key``): the same, and without the key nobody can compute a valid hash, so a
  person who can write the file but cannot read the key cannot forge, edit or
  re-chain events. Keep the key away from the hosts' ordinary users (a systemd
  credential or env var the gateway's service account alone can read).

Neither mode catches a *truncation* made together with a rewritten head (the last
events deleted and ``audit_head`` set back to an earlier event) unless the head was
noted elsewhere: ``aigw audit verify`` prints it, so archive that line (or the
export) from time to time. Events written without a key stay plain after a key is
set; ``verify`` refuses a plain event after a keyed one (a downgrade).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

import orjson

from aigw.errors import AigwError, SecretError
from aigw.model import AuditEvent, LedgerRow

GENESIS = "0" * 64
PLAIN = "sha256"
KEYED = "hmac-sha256"
KEY_ENV = "AIGW_AUDIT_KEY"
KEYRING_USER = "audit:hmac-key"  # service "aigw", like provider keys (no provider has ':')

# The fields the hash covers, by name: all but the hash itself (prev_hash is chained
# separately). Never reorder or rename without a new ``alg``: old events would not verify.
HASHED = tuple(sorted(f.name for f in fields(AuditEvent) if f.name not in ("hash", "prev_hash")))
COLUMNS = tuple(f.name for f in fields(AuditEvent))
_HASHED_VALUES = attrgetter(*HASHED)


def canonical(event: AuditEvent) -> bytes:
    """The bytes an event's hash covers: a JSON array of its values in :data:`HASHED`
    order (field names sorted). An array, not an object: this runs for every call."""
    return orjson.dumps(_HASHED_VALUES(event))


def digest(alg: str, key: bytes | None, prev_hash: str, event: AuditEvent) -> str:
    data = prev_hash.encode() + b"\n" + canonical(event)
    if alg == KEYED:
        if key is None:
            raise AigwError("an HMAC-sealed event needs the audit key to be checked")
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


class Sealer:
    """Seals events in order; the key (None: plain SHA-256) is looked up once, lazily."""

    def __init__(self, load: Callable[[], bytes | None] | None = None) -> None:
        self._load = load if load is not None else load_key
        self._key: bytes | None = None
        self._loaded = False

    @property
    def key(self) -> bytes | None:
        if not self._loaded:
            self._key, self._loaded = self._load(), True
        return self._key

    def seal(self, events: Iterable[AuditEvent], seq: int, prev_hash: str) -> tuple[int, str]:
        """Number and hash ``events`` after (seq, prev_hash); returns the new head."""
        key = self.key
        alg = PLAIN if key is None else KEYED
        for event in events:
            seq += 1
            event.seq, event.alg, event.prev_hash = seq, alg, prev_hash
            event.hash = prev_hash = digest(alg, key, prev_hash, event)
        return seq, prev_hash


def call_event(row: LedgerRow, scrub: str | None = None) -> AuditEvent:
    """The audit event of a proxied call: its ledger row's facts (and the scrub counts,
    JSON)."""
    return AuditEvent(
        ts=row.ts,
        kind="proxy",
        request_id=row.request_id,
        key_id=row.key_id,
        team=row.team,
        app=row.app,
        endpoint=row.endpoint,
        model=row.model,
        provider=row.provider,
        upstream_model=row.upstream_model,
        status=row.status,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_nusd=row.cost_nusd,
        error=row.error,
        scrub=scrub,
    )


# -- the key ---------------------------------------------------------------------------


def load_key() -> bytes | None:
    """The HMAC key: ``AIGW_AUDIT_KEY``, then the keyring; None when neither has one."""
    value = os.environ.get(KEY_ENV, "").strip()
    if value:
        return value.encode()
    try:
        import keyring

        from aigw.secrets import SERVICE

        stored = keyring.get_password(SERVICE, KEYRING_USER)
    except Exception:  # no usable keyring: plain mode (verify says which mode it ran)
        return None
    return stored.encode() if stored else None


def store_key(value: str) -> None:
    """Save the HMAC key in the OS keyring."""
    import keyring

    from aigw.secrets import SERVICE

    try:
        keyring.set_password(SERVICE, KEYRING_USER, value.strip())
    except Exception as exc:
        raise SecretError(
            f"cannot store the audit key in the keyring ({exc}); set {KEY_ENV} instead"
        ) from exc


# -- admin events ----------------------------------------------------------------------


def os_actor() -> str:
    """Who is changing things: the OS user and host, ``alice@build-01``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid()) if hasattr(os, "getuid") else "?"
    return f"{user}@{socket.gethostname()}"


# Never in an admin event's before/after, whatever the record holds.
SECRET_FIELDS = frozenset({"hash", "key", "api_key", "secret", "password", "token"})


def state_json(value: Any) -> str | None:
    """A record (dataclass or dict) as JSON, without secrets; None stays None."""
    if value is None:
        return None
    if hasattr(value, "__dataclass_fields__"):
        value = {f: getattr(value, f) for f in value.__dataclass_fields__}
    return orjson.dumps(_clean(value), option=orjson.OPT_SORT_KEYS).decode()


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if str(k) not in SECRET_FIELDS}
    if hasattr(value, "__dataclass_fields__"):
        return _clean({f: getattr(value, f) for f in value.__dataclass_fields__})
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def admin_event(
    action: str,
    target: str,
    *,
    before: Any = None,
    after: Any = None,
    actor: str | None = None,
    ts: float | None = None,
) -> AuditEvent:
    import time

    return AuditEvent(
        ts=time.time() if ts is None else ts,
        kind="admin",
        actor=actor or os_actor(),
        action=action,
        target=target,
        before=state_json(before),
        after=state_json(after),
    )


# -- verification ----------------------------------------------------------------------


@dataclass(slots=True)
class Verdict:
    """What ``aigw audit verify`` found."""

    ok: bool
    checked: int
    keyed: int  # events sealed with the HMAC key
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None


def describe(event: AuditEvent) -> str:
    """An event in a few words, to name it."""
    if event.kind == "admin":
        return f"event {event.seq} ({event.action} {event.target}, by {event.actor})"
    return f"event {event.seq} (request {event.request_id}, status {event.status})"


class ChainCheck:
    """Checks events fed in seq order; the first that does not verify stops it.

    Feed the events up to the head read *before* them (a running server keeps
    appending), then ask :meth:`result` with that head.
    """

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.expect_seq, self.prev, self.checked, self.keyed = 1, GENESIS, 0, 0
        self.bad_seq: int | None = None
        self.problem: str | None = None

    def _fail(self, seq: int, problem: str) -> bool:
        self.bad_seq, self.problem = seq, problem
        return False

    def feed(self, event: AuditEvent) -> bool:
        """Check the next event; False (and :attr:`problem` says why) if it fails."""
        if self.problem is not None:
            return False
        expect = self.expect_seq
        if event.seq != expect:
            if event.seq > expect:
                return self._fail(
                    expect, f"event {expect} is missing (the next one is {event.seq}): deleted"
                )
            return self._fail(event.seq, f"{describe(event)} is out of order")
        if event.prev_hash != self.prev:
            return self._fail(
                event.seq,
                f"{describe(event)} does not follow event {event.seq - 1}: "
                "events were deleted, reordered or re-chained",
            )
        if event.alg == KEYED:
            self.keyed += 1
            if self.key is None:
                return self._fail(
                    event.seq,
                    f"{describe(event)} is HMAC-sealed but no audit key is set "
                    f"({KEY_ENV} or `aigw audit set-key`)",
                )
        elif event.alg != PLAIN:
            return self._fail(event.seq, f"{describe(event)} has an unknown algorithm")
        elif self.keyed:
            return self._fail(event.seq, f"{describe(event)} is not HMAC-sealed after keyed events")
        if digest(event.alg, self.key, self.prev, event) != event.hash:
            return self._fail(event.seq, f"{describe(event)} was edited: its hash does not match")
        self.prev = event.hash
        self.expect_seq += 1
        self.checked += 1
        return True

    def result(self, head: tuple[int, str] | None) -> Verdict:
        head_seq, head_hash = head or (0, GENESIS)
        if self.problem is None:
            last = self.expect_seq - 1
            if head_seq > last:
                self._fail(
                    last + 1, f"events {last + 1}..{head_seq} are missing: deleted from the end"
                )
            elif head_seq != last or head_hash != self.prev:
                self._fail(last, f"the chain head does not match event {last}")
        return Verdict(
            self.problem is None,
            self.checked,
            self.keyed,
            head_seq,
            head_hash,
            self.bad_seq,
            self.problem,
        )


def verify(
    events: Iterable[AuditEvent], head: tuple[int, str] | None, key: bytes | None
) -> Verdict:
    """Walk the chain in seq order; stop at the first event that does not verify."""
    check = ChainCheck(key)
    for event in events:
        if not check.feed(event):
            break
    return check.result(head)


# -- output ----------------------------------------------------------------------------

_JSON_FIELDS = ("scrub", "before", "after")


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """An event for JSON output: ISO time, its JSON fields parsed, chain fields last."""
    from datetime import UTC, datetime

    out: dict[str, Any] = {"time": datetime.fromtimestamp(event.ts, UTC).isoformat()}
    for name in COLUMNS:
        value = getattr(event, name)
        if name in _JSON_FIELDS and value is not None:
            value = orjson.loads(value)
        out[name] = value
    return out


def config_changes(
    old: dict[str, Any], new: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What changed between two configs (``to_dict`` form), two levels deep
    (``providers.openai``, ``server``): (before, after), values masked where a header
    or query parameter might carry a credential."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    if name in a:
                        before[f"{section}.{name}"] = _mask(a[name])
                    if name in b:
                        after[f"{section}.{name}"] = _mask(b[name])
        else:
            if a is not None:
                before[section] = _mask(a)
            if b is not None:
                after[section] = _mask(b)
    return before, after


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                dict.fromkeys(v, "***")
                if k in ("headers", "query") and isinstance(v, dict)
                else _mask(v)
            )
            for k, v in value.items()
        }
    return value
