"""Helpers for the limits, budgets, alerts and quotas tests."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
from aiohttp import web

from aigw.app import create_app
from aigw.config import Config
from aigw.model import Limits
from aigw.tokens import prompt
from tests.conftest import RunningGateway, listening

HI = [{"role": "user", "content": "hi"}]
# gpt-4o-mini costs 150 / 600 nano-USD per prompt / completion token. The fakes answer
# with 11 + 7 tokens; admission reserves the prompt's upper bound plus max_tokens.
PER_CALL = 11 * 150 + 7 * 600
WORST_20 = prompt({"messages": HI}, "chat").bound * 150 + 20 * 600


class Clock:
    """A frozen clock for the limits engine: time moves only when a test says so."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def freeze(gw: RunningGateway) -> Clock:
    clock = Clock(time.time())
    gw.gw.limiter.clock = clock
    return clock


async def team(gw: RunningGateway, name: str, **limits: Any) -> None:
    """Create a team in the gateway's database and make the server see it now."""
    await gw.team(name, Limits(**limits))
    await gw.gw.directory.refresh()


async def outcomes(
    client: openai.AsyncOpenAI, n: int, model: str = "mock/echo", **kw: Any
) -> list[str]:
    """Send ``n`` concurrent calls; 'ok', or the error code of each refusal."""

    async def one() -> str:
        try:
            await client.chat.completions.create(model=model, messages=HI, **kw)
        except openai.APIStatusError as exc:
            return str(exc.code or exc.status_code)
        return "ok"

    return list(await asyncio.gather(*[one() for _ in range(n)]))


Start = Callable[[Config], Awaitable[RunningGateway]]


@asynccontextmanager
async def gateways(state: Path) -> AsyncIterator[Start]:
    """start(config) runs a gateway on the same state file each time (for restarts);
    stop one with ``await gw.runner.cleanup()``, which drains it like a shutdown."""
    runners: list[web.AppRunner] = []

    async def start(cfg: Config) -> RunningGateway:
        server = await listening(create_app(cfg, state))
        runners.append(server.runner)
        return RunningGateway(server.app, server.runner, server.port, state)

    try:
        yield start
    finally:
        for r in runners:
            await r.cleanup()


class Webhook:
    """A fake alert receiver (Slack-style incoming webhook) on a real port."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # delivered bodies
        self.attempts = 0
        self.statuses: deque[int] = deque()  # scripted answers; then 200
        self.app = web.Application()
        self.app.router.add_post("/hook", self.handle)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.attempts += 1
        status = self.statuses.popleft() if self.statuses else 200
        if status < 300:
            self.received.append(body)
        return web.Response(status=status, text="ok" if status < 300 else "try later")

    async def start(self) -> Webhook:
        server = await listening(self.app)
        self._runner, self.port = server.runner, server.port
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, n: int, within: float = 3.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {n} alerts"
            await asyncio.sleep(0.01)
        return self.received
