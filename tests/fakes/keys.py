"""Per-key answers in front of a fake provider: one key rejected, another rate-limited.

``KeyGate(fake).answer("bad-key", Fail(401, ...))`` makes every request that presents
``bad-key`` fail that way, whatever the fake's script says; the other keys reach the
fake. ``seen`` lists the keys presented, in order. Error bodies are the providers' own
(OpenAI's 401 and 429 as its API reference documents them, Anthropic's
authentication_error); ``{key}`` in a message is replaced by the presented key, as a
careless upstream might echo it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from tests.fakes.base import Fail, FakeUpstream
from tests.fakes.chaos import presented_key


def openai_401(key: str) -> Fail:
    # https://platform.openai.com/docs/guides/error-codes (401 Invalid Authentication);
    # the real API masks most of the key: this one echoes it whole, to test redaction.
    body = {
        "error": {
            "message": f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    return Fail(401, body=orjson.dumps(body))


def openai_429(key: str, retry_after: str = "20") -> Fail:
    body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-fake on "
            f"requests per min (RPM): Limit 3, Used 3, Requested 1 (key {key}). "
            "Please try again in 20s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    return Fail(429, body=orjson.dumps(body), headers={"Retry-After": retry_after})


def anthropic_401(key: str) -> Fail:
    # https://docs.anthropic.com/en/api/errors (authentication_error)
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {key}"},
    }
    return Fail(401, body=orjson.dumps(body))


class KeyGate:
    def __init__(self, fake: FakeUpstream) -> None:
        self.rules: dict[str, Fail] = {}
        self.seen: list[str] = []
        fake.app.middlewares.append(self._middleware)

    def answer(self, key: str, fail: Fail) -> KeyGate:
        self.rules[key] = fail
        return self

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        key = presented_key(request)
        self.seen.append(key)
        fail = self.rules.get(key)
        if fail is None:
            return await handler(request)
        await request.read()
        return web.Response(
            status=fail.status,
            body=fail.body,
            headers={"Content-Type": "application/json", **fail.headers},
        )
