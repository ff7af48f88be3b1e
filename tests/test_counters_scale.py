"""Three `aigw serve` processes sharing one PostgreSQL and one Redis behave as one
gateway: a limit holds for all of them together, not once per process.

Real subprocesses, each with a home of its own (as on three machines), real PostgreSQL
(tests/pgserver.py) and Redis (tests/redis_kit.py), a counting fake upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
import openai
import pytest

from aigw.config import Config, ModelConfig, ProviderConfig, QuotaConfig, TargetConfig
from aigw.model import Limits
from aigw.store.postgres import PostgresStore, open_postgres
from tests.limitkit import HI, Webhook
from tests.pgserver import fresh_database
from tests.redis_kit import REDIS_URL, PrivateRedis, Upstream, drop_prefix, new_prefix, shared_redis
from tests.serverproc import ServerProcess, start_server

pytestmark = pytest.mark.slow

# Each call is billed 11 prompt tokens and max_tokens completion tokens (gpt-4o-mini:
# 150 / 600 nano-USD per token).
PROMPT, PRICE_IN, PRICE_OUT = 11, 150, 600


class Fleet:
    def __init__(
        self, store_url: str, servers: list[ServerProcess], upstream: Upstream, backup: Upstream
    ) -> None:
        self.store_url = store_url
        self.servers = servers
        self.upstream = upstream
        self.backup = backup  # the second target of "fast" when the fleet has one
        self._next = itertools.cycle(range(len(servers)))

    def client(self, key: str) -> openai.AsyncOpenAI:
        """A client of the next server in turn (clients spread over the processes)."""
        server = self.servers[next(self._next)]
        return openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30
        )

    async def ledger_total(self) -> tuple[int, int]:
        """(billed rows, nano-USD) committed by all processes."""
        conn = await asyncpg.connect(self.store_url)
        try:
            row = await conn.fetchrow(
                "SELECT COUNT(*), COALESCE(SUM(cost_nusd), 0) FROM ledger WHERE cost_nusd > 0"
            )
        finally:
            await conn.close()
        assert row is not None
        return int(row[0]), int(row[1])


Keys = dict[str, Limits]


@asynccontextmanager
async def fleet(
    tmp_path: Path,
    keys: Keys,
    *,
    url: str = REDIS_URL,
    mode: str = "refuse",
    delay: float = 0.0,
    n: int = 3,
    webhook: str = "",
    quota_rpm: int | None = None,
    breaker_failures: int | None = None,
) -> AsyncIterator[tuple[Fleet, dict[str, str]]]:
    """``n`` servers, each with a home of its own, on one fresh PostgreSQL database and
    one Redis (a fresh key prefix), with the keys named in ``keys`` created up front
    (name -> secret)."""
    client = await shared_redis() if url == REDIS_URL else None
    prefix = new_prefix()
    async with AsyncExitStack() as stack:
        if client is not None:
            stack.push_async_callback(client.aclose)
            stack.push_async_callback(drop_prefix, client, prefix)
        store_url = await stack.enter_async_context(fresh_database(migrated=True))
        up = await Upstream(delay=delay).start()
        stack.push_async_callback(up.close)
        backup = await Upstream().start()
        stack.push_async_callback(backup.close)
        cfg = Config()
        cfg.store.url = store_url
        cfg.routing.max_attempts = 1
        cfg.providers["openai"] = ProviderConfig("openai", "openai", up.base_url)
        cfg.models["fast"] = ModelConfig("fast", "openai", "gpt-4o-mini")
        cfg.counters.url = url
        cfg.counters.prefix = prefix
        cfg.counters.on_unavailable = mode
        cfg.alerts.webhook_url = webhook
        if breaker_failures is not None:
            cfg.routing.breaker_failures = breaker_failures
            cfg.routing.breaker_cooldown = 600.0  # stays open for the whole test
            # A second target: an open breaker is skipped only when there is another.
            cfg.providers["backup"] = ProviderConfig("backup", "openai", backup.base_url)
            cfg.models["fast"].targets = (
                TargetConfig("openai", "gpt-4o-mini"),
                TargetConfig("backup", "gpt-4o-mini"),
            )
        if quota_rpm is not None:
            cfg.quotas["openai"] = QuotaConfig("openai", rpm=quota_rpm)
            cfg.limits.queue_max_wait = 1.0  # the rest are refused instead of queued a minute
        store = PostgresStore(await open_postgres(store_url))
        secrets: dict[str, str] = {}
        try:
            for name, limits in keys.items():
                secrets[name], _ = await store.keys.create(team=f"team-{name}", limits=limits)
        finally:
            await store.close()
        servers: list[ServerProcess] = []
        env = {"AIGW_OPENAI_API_KEY": "sk-test", "AIGW_BACKUP_API_KEY": "sk-test"}
        for i in range(n):
            home = tmp_path / f"gw{i}"
            home.mkdir()
            server = await start_server(home, cfg, env)
            servers.append(server)
            stack.push_async_callback(server.stop)
        yield Fleet(store_url, servers, up, backup), secrets


async def call(f: Fleet, key: str, **kw: object) -> str:
    """'ok', or the refusal's code (the status when it has none)."""
    async with f.client(key) as c:
        try:
            await c.chat.completions.create(model="fast", messages=HI, **kw)  # type: ignore[call-overload]
        except openai.APIStatusError as exc:
            return str(exc.code or exc.status_code)
    return "ok"


async def burst(n: int, one: Callable[[], Awaitable[str]]) -> Counter[str]:
    return Counter(await asyncio.gather(*[one() for _ in range(n)]))


async def test_rpm_60_admits_exactly_60_of_300_across_three_processes(tmp_path: Path) -> None:
    async with fleet(tmp_path, {"k": Limits(rpm=60)}) as (f, keys):
        started = time.monotonic()
        got = await burst(300, lambda: call(f, keys["k"]))
        took = time.monotonic() - started
        # 60 at once, and the limit refills one a second (GCRA): a burst that a busy
        # machine spreads over more than a second may rightly get one more per second.
        refilled = int(took)
        assert set(got) == {"ok", "rate_limit_exceeded"}, got
        assert 60 <= got["ok"] <= 60 + refilled, (got, took)
        assert f.upstream.calls == got["ok"]


async def test_a_budget_is_never_overspent_across_three_processes(tmp_path: Path) -> None:
    budget = 10_000_000  # $0.01
    per_call = PROMPT * PRICE_IN + 2000 * PRICE_OUT  # ~$0.0012: at most 8 fit
    async with fleet(tmp_path, {"k": Limits(budget_nusd=budget)}) as (f, keys):
        got = await burst(300, lambda: call(f, keys["k"], max_tokens=2000))
        rows, total = await f.ledger_total()
    assert set(got) <= {"ok", "budget_exceeded"}, got
    assert 1 <= got["ok"] <= budget // per_call
    assert rows == got["ok"]
    assert total == got["ok"] * per_call
    assert total <= budget


async def test_a_concurrency_cap_holds_across_three_processes(tmp_path: Path) -> None:
    # Calls long enough that the four admitted ones overlap at the upstream even when a
    # busy machine spreads the burst out.
    async with fleet(tmp_path, {"k": Limits(max_parallel=4)}, delay=2.0) as (f, keys):
        got = await burst(60, lambda: call(f, keys["k"]))
        assert set(got) == {"ok", "rate_limit_exceeded"}, got
        assert f.upstream.peak == 4  # never more in flight at the upstream, all processes
        # The slots come back when calls end: the next ones are admitted.
        assert await burst(4, lambda: call(f, keys["k"])) == {"ok": 4}


@pytest.mark.parametrize("mode", ["refuse", "local"])
async def test_redis_restarted_under_load_follows_on_unavailable(tmp_path: Path, mode: str) -> None:
    redis_ = PrivateRedis()
    await redis_.start()
    try:
        async with fleet(
            tmp_path, {"k": Limits(rpm=1_000_000)}, url=redis_.url, mode=mode, delay=0.01
        ) as (f, keys):
            seen: list[str] = []
            stop = asyncio.Event()

            async def worker() -> None:
                while not stop.is_set():
                    seen.append(await call(f, keys["k"]))

            async def answered(n: int) -> None:
                start = seen.count("ok")
                while seen.count("ok") < start + n:  # noqa: ASYNC110 - workers append
                    await asyncio.sleep(0.02)

            workers = [asyncio.create_task(worker()) for _ in range(9)]
            try:
                async with asyncio.timeout(60):
                    await answered(30)
                    await redis_.stop()
                    down_from = len(seen)
                    while len(seen) < down_from + 60:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                    during = Counter(seen[down_from:])
                    await redis_.start()
                    await answered(60)  # served again (through Redis once a probe finds it)
            finally:
                stop.set()
                await asyncio.gather(*workers)
            for s in f.servers:
                assert s.proc.returncode is None, "".join(s.output)
            out = "".join(line for s in f.servers for line in s.output)
    finally:
        await redis_.stop()
    assert set(seen) <= {"ok", "counters_unavailable"}, Counter(seen)
    assert "Traceback" not in out, out
    if mode == "refuse":
        assert during["counters_unavailable"] > 0, during
    else:
        assert during == {"ok": sum(during.values())}, during
        assert "limits are per process until it is back" in out
    assert "limits are shared again" in out


async def test_a_budget_alert_is_posted_once_by_three_processes(tmp_path: Path) -> None:
    hook = await Webhook().start()
    try:
        limits = Limits(budget_nusd=10_000_000, alert_at=(10,))
        async with fleet(tmp_path, {"k": limits}, webhook=hook.url) as (f, keys):
            # One call through each process: each then sees the spend past 10 %.
            for _ in range(3):
                assert await call(f, keys["k"], max_tokens=2000) == "ok"
            for s in f.servers:
                await s.wait_output("budget alert:")
        # Stopped: each process has drained its webhook queue.
        assert len(hook.received) == 1, hook.received
    finally:
        await hook.close()


async def test_a_provider_quota_holds_across_three_processes(tmp_path: Path) -> None:
    # Keys without limits of their own: only the provider quota (20 per minute, shared
    # through Redis) stands between 90 calls and the upstream.
    async with fleet(tmp_path, {"k": Limits()}, quota_rpm=20) as (f, keys):
        started = time.monotonic()
        got = await burst(90, lambda: call(f, keys["k"]))
        took = time.monotonic() - started
        assert set(got) == {"ok", "upstream_quota_exceeded"}, got
        # 20 at once, then one every 3 s (a queued call may get a refilled one).
        assert 20 <= got["ok"] <= 20 + int(took / 3) + 1, (got, took)
        assert f.upstream.calls == got["ok"]


async def breaker_states(f: Fleet, target: str) -> list[str]:
    """Each process's breaker state for ``target`` (its /readyz)."""
    out = []
    async with aiohttp.ClientSession() as http:
        for s in f.servers:
            async with http.get(s.url + "/readyz") as resp:
                body = await resp.json()
            out.append(body["breakers"].get(target, {}).get("state", "unseen"))
    return out


async def test_a_breaker_opened_by_failures_in_all_processes_is_open_in_each(
    tmp_path: Path,
) -> None:
    target = "openai/gpt-4o-mini"
    async with fleet(tmp_path, {"k": Limits()}, breaker_failures=3) as (f, keys):
        f.upstream.fail_status = 500
        # One failure through each process: none of them crossed the threshold (3)
        # alone, together they did.
        for _ in range(3):
            assert await call(f, keys["k"]) in {"500", "502"}
        deadline = time.monotonic() + 10
        while (states := await breaker_states(f, target)) != ["open"] * 3:
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.05)
        # Open everywhere: every process sends the next calls to the other target.
        calls = f.upstream.calls
        f.upstream.fail_status = 0  # healthy again, but nobody asks before the cooldown
        assert await burst(6, lambda: call(f, keys["k"])) == {"ok": 6}
        assert f.upstream.calls == calls
        assert f.backup.calls == 6
