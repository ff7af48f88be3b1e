"""Step 1, authenticate: the gateway key from the request, looked up by hash in memory.

The server holds every key record (with the key's own limits) in a dict keyed by
hash. A background task asks SQLite for the generation number twice a second and
reloads the dict when it changed, so `aigw keys create/revoke/update` take effect
within a second, no restart, and no request waits on SQLite. Team edits bump the same
number (triggers in migration 0002); the limits engine reloads the teams on it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from aiohttp import web

from aigw.errors import GatewayError
from aigw.model import KeyRecord, hash_key
from aigw.store import Database
from aigw.store.sqlite import keys as keystore

log = logging.getLogger("aigw.auth")

POLL_SECONDS = 0.5


class KeyCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.by_hash: dict[str, KeyRecord] = {}
        self.generation = -1

    async def refresh(self) -> bool:
        """Reload if any key changed; True when it did."""
        gen = await keystore.generation(self.db)
        if gen == self.generation:
            return False
        records = await keystore.list_all(self.db)
        self.by_hash = {r.hash: r for r in records}
        self.generation = gen
        return True

    async def watch(self) -> None:
        """Poll forever (run as a background task)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if await self.refresh():
                    log.info("reloaded %d gateway keys", len(self.by_hash))
            except Exception:  # a locked or busy database must not kill the watcher
                log.exception("could not reload gateway keys; will retry")


# Gateway keys are "gw-" + URL-safe base64. Anything outside visible ASCII, or longer
# than any key we issue, is simply invalid: it is refused before it is hashed (a
# non-UTF-8 header arrives as surrogates, which cannot be encoded).
MAX_KEY_CHARS = 256
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_CHARS}}}")


def presented_key(request: web.Request) -> str | None:
    """The key from ``X-Gateway-Key``, ``Authorization: Bearer``, ``x-api-key``,
    ``x-goog-api-key`` or ``?key=``, in that order.

    ``X-Gateway-Key`` comes first: it can only mean the gateway, so it wins over an
    ``Authorization`` header a client may still carry for its provider.
    """
    headers = request.headers
    explicit = (headers.get("X-Gateway-Key") or "").strip()
    if explicit:
        return explicit
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return (
        headers.get("x-api-key")
        or headers.get("x-goog-api-key")
        or request.rel_url.query.get("key")
        or None
    )


def _unauthorized(message: str, code: str) -> GatewayError:
    return GatewayError(401, message, type="invalid_request_error", code=code)


def authenticate(cache: KeyCache, request: web.Request) -> KeyRecord:
    key = presented_key(request)
    if key is None:
        raise _unauthorized(
            "Missing gateway key. Send it as 'Authorization: Bearer gw-...' "
            "(or in X-Gateway-Key, x-api-key or x-goog-api-key, or as ?key=).",
            "missing_api_key",
        )
    rec = cache.by_hash.get(hash_key(key)) if _KEY.fullmatch(key) else None
    if rec is None:
        raise _unauthorized("Invalid gateway key.", "invalid_api_key")
    state = rec.state(time.time())
    if state != "active":
        raise _unauthorized(f"This gateway key ({rec.id}) is {state}.", f"key_{state}")
    return rec
