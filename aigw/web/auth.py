"""Who may open the admin pages: an admin key, sent as a header or traded for a cookie.

``Authorization: Bearer gw-...`` (or ``X-Gateway-Key``) works on every admin endpoint.
A browser logs in once with the form on ``/dashboard``: the key is checked and traded
for a session cookie -- a random token, HttpOnly, SameSite=Strict, never the key
itself. The token maps to the key's hash in memory only, so a restart logs everyone
out, and every request checks the key again: revoking it ends its sessions at once.
"""

from __future__ import annotations

import hmac
import secrets
import time

from aiohttp import web

from aigw.directory import Directory
from aigw.model import KeyRecord, hash_key
from aigw.pipeline.authenticate import MAX_KEY_CHARS, presented_key

COOKIE = "aigw_session"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000


class AdminDenied(Exception):
    """Why a request may not use an admin page: ``status`` 401 (no or a wrong key) or
    403 (a key that is not an admin key)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Sessions:
    """Session tokens -> (key hash, expiry), in memory."""

    def __init__(self, seconds: float = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.seconds = seconds
        self.limit = limit
        self._by_token: dict[str, tuple[str, float]] = {}

    def open(self, key_hash: str) -> str:
        now = time.time()
        live = {t: v for t, v in self._by_token.items() if v[1] > now}
        while len(live) >= self.limit:  # the oldest session goes first
            del live[next(iter(live))]
        token = secrets.token_urlsafe(32)
        live[token] = (key_hash, now + self.seconds)
        self._by_token = live
        return token

    def key_hash(self, token: str) -> str | None:
        found = self._by_token.get(token)
        if found is None or found[1] <= time.time():
            return None
        return found[0]

    def close(self, token: str) -> None:
        self._by_token.pop(token, None)


async def check_admin_key(directory: Directory, key: str) -> KeyRecord:
    """The active admin key ``key`` is, or AdminDenied."""
    if not key or len(key) > MAX_KEY_CHARS or not key.isascii():
        raise AdminDenied(401, "Invalid key.")
    rec = await directory.lookup(hash_key(key))
    return _admin(rec)


def _admin(rec: KeyRecord | None) -> KeyRecord:
    if rec is None:
        raise AdminDenied(401, "Invalid key.")
    state = rec.state(time.time())
    if state != "active":
        raise AdminDenied(401, f"This key ({rec.id}) is {state}.")
    if not rec.admin:
        raise AdminDenied(
            403,
            f"Key {rec.id} is a team key; only an admin key (aigw keys create --admin) "
            "opens this page.",
        )
    return rec


async def admin_of(request: web.Request, directory: Directory, sessions: Sessions) -> KeyRecord:
    """The admin key of the request (header first, then the session cookie), or
    AdminDenied."""
    key = presented_key(request)
    if key is not None:
        return await check_admin_key(directory, key)
    token = request.cookies.get(COOKIE)
    if token:
        key_hash = sessions.key_hash(token)
        if key_hash is not None:
            rec = directory.key(key_hash) or await directory.lookup(key_hash)
            return _admin(rec)
    raise AdminDenied(401, "Log in with an admin key.")


def set_session_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def same_origin(request: web.Request) -> bool:
    """A form post comes from our own page (defence in depth beside SameSite)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("Host", "")
    return hmac.compare_digest(origin.split("://", 1)[-1], host)


SESSIONS = web.AppKey("admin_sessions", Sessions)
