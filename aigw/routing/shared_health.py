"""Circuit breakers shared by every gateway process through Redis: :class:`SharedHealth`.

Reading a breaker (:meth:`allow`, once per call and target) stays a dict lookup in
this process: no round trip. The state is kept current by Redis pub/sub: every
outcome is counted in Redis (:data:`aigw.limits.lua.BREAKER`), and the script that
opens or closes a breaker publishes it, so a target one process found failing opens
in all of them within a message's delay. A failure is sent at once (in the
background, never awaited by the call); successes are batched per target and sent
every :data:`FLUSH_SECONDS`. A (re)subscribing process reads the breakers open now.

Each process also keeps its own counts (:class:`LocalHealth`): it opens a breaker
when it alone crosses the threshold, and when all of them together do. After the
cooldown each process lets its own probe through; the first success closes the
breaker everywhere. Latency averages stay per process. Redis unreachable: the
breakers are per process until it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aigw.config import RoutingConfig
from aigw.limits import lua
from aigw.routing.health import CLOSED, OPEN, LocalHealth

log = logging.getLogger("aigw.routing")

FLUSH_SECONDS = 0.2
RESUBSCRIBE_SECONDS = 1.0
_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class SharedHealth(LocalHealth):
    """Breakers counted in Redis for every process, read from this process's copy."""

    def __init__(self, config: RoutingConfig, client: aioredis.Redis, prefix: str) -> None:
        # Wall-clock time: an opened_at from another process means the same moment here.
        super().__init__(config, time.time)
        self.redis = client
        self.prefix = prefix
        self.channel = f"{prefix}breakers"
        self.open_key = f"{prefix}breakers:open"
        self._script = client.register_script(lua.BREAKER)
        self._successes: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()  # for tests: messages reach this process

    def success(self, target: str, first_byte: float | None) -> None:
        super().success(target, first_byte)
        self._successes[target] = self._successes.get(target, 0) + 1

    def failure(self, target: str) -> None:
        super().failure(target)
        ok = self._successes.pop(target, 0)  # sent first: the order of the outcomes
        task = asyncio.get_running_loop().create_task(self._send(target, ok, 1))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, target: str, ok: int, failed: int) -> None:
        cfg = self.config
        keys = [f"{self.prefix}breaker:{target}", f"{self.prefix}breaker:{target}:win"]
        args: list[str | int | float] = [target, ok, failed, cfg.breaker_failures]
        args.append(cfg.breaker_min_calls)
        args += [cfg.breaker_failure_ratio, cfg.breaker_window, cfg.breaker_cooldown]
        try:
            await self._script(keys=[*keys, self.open_key], args=[*args, self.channel])
        except _ERRORS as exc:
            log.debug("breaker outcome for %s not shared: %s", target, exc)

    def apply(self, message: bytes | str) -> None:
        """A breaker opened or closed in some process (a pub/sub message)."""
        what, target, at = orjson.loads(message)
        b = self._get(str(target))
        if what == "open":
            opened = float(at)
            if b.state != OPEN or b.opened_at < opened:
                b.state, b.opened_at, b.probe_at = OPEN, opened, 0.0
        elif b.state != CLOSED:
            b.close()

    async def run(self) -> None:
        """Listen for breaker changes and send batched successes, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._flush_forever())
            tg.create_task(self._listen_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            pending, self._successes = self._successes, {}
            for target, ok in pending.items():
                await self._send(target, ok, 0)

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Opened while this process was not listening: read them once.
                for target, at in (await self.redis.hgetall(self.open_key)).items():
                    self.apply(orjson.dumps(["open", target, at]))
                self.subscribed.set()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        self.apply(msg["data"])
            except _ERRORS as exc:
                self.subscribed.clear()
                log.debug("breaker channel lost (%s); subscribing again", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)
            finally:
                with suppress(*_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py

    async def close(self) -> None:
        """Send what is pending (best effort), before the Redis client closes."""
        pending, self._successes = self._successes, {}
        for target, ok in pending.items():
            await self._send(target, ok, 0)
        for t in list(self._tasks):
            with suppress(Exception):
                await t
