"""Step 1, authenticate: the gateway key from the request, looked up by hash.

Keys are held in memory by :class:`aigw.directory.Directory`; a key it does not
hold is asked of the store once (so a key works the moment it is created) before
the call gets a 401.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from aigw.directory import Directory
from aigw.errors import GatewayError
from aigw.model import KeyRecord, hash_key

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


async def authenticate(directory: Directory, request: web.Request) -> KeyRecord:
    """The active key record of the caller, or GatewayError(401)."""
    key = presented_key(request)
    if key is None:
        raise _unauthorized(
            "Missing gateway key. Send it as 'Authorization: Bearer gw-...' "
            "(or in X-Gateway-Key, x-api-key or x-goog-api-key, or as ?key=).",
            "missing_api_key",
        )
    rec = await directory.lookup(hash_key(key)) if _KEY.fullmatch(key) else None
    if rec is None:
        raise _unauthorized("Invalid gateway key.", "invalid_api_key")
    state = rec.state(time.time())
    if state != "active":
        raise _unauthorized(f"This gateway key ({rec.id}) is {state}.", f"key_{state}")
    if rec.admin:
        raise GatewayError(
            403,
            f"This is an admin key ({rec.id}): it opens the dashboard and the admin "
            "endpoints, and makes no model calls. Use a team key "
            "(aigw keys create --team TEAM).",
            type="permission_error",
            code="admin_key",
        )
    return rec
