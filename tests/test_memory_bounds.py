"""Memos keyed by client-chosen strings stay bounded: distinct huge model names sent
one after another must not stay in memory. And the garbage collector, tuned by
``aigw serve`` once it listens, still frees cycles with the objects it tracks bounded."""

from __future__ import annotations

import gc
import secrets
import time
import tracemalloc
from collections.abc import Iterator

import aiohttp
import pytest

from aigw.config import Config, ProviderConfig
from aigw.limits.gcra import Counters
from aigw.limits.quotas import MAX_PAUSED_MODELS, Quotas
from aigw.memo import MAX_ENTRIES, MAX_KEY, Memo
from aigw.model import Limits, hash_key
from aigw.server import YOUNG_THRESHOLD, settle_heap
from tests.conftest import RunningGateway

MiB = 1 << 20


def big_name(size: int) -> str:
    return secrets.token_hex(size // 2)


def test_memo_never_stores_long_keys_and_drops_the_oldest() -> None:
    calls: list[str] = []

    def compute(k: str) -> int:
        calls.append(k)
        return len(k)

    memo: Memo[str, int] = Memo(compute, len, max_entries=3, max_key=8)
    assert memo("a" * 9) == 9 and len(memo) == 0  # too long: computed, not kept
    for k in ("a", "b", "c", "d"):
        memo(k)
    assert len(memo) == 3 and memo.key_chars() == 3
    memo("b")  # still held: not computed again
    assert calls.count("b") == 1
    memo("a")  # dropped as the oldest: computed again
    assert calls.count("a") == 2


async def test_huge_distinct_model_names_are_not_retained(gateway: RunningGateway) -> None:
    """The route, price and model-permission memos see every routable model name."""
    gw = gateway.gw
    key = await gateway.key(limits=Limits(models=("openai/*", "mock/*", "fast")))
    rec = await gw.directory.lookup(hash_key(key))
    assert rec is not None
    assert rec.limits.models is not None
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(40):
            name = "openai/" + big_name(MiB)
            target = gw.router.route(name).first
            assert gw.permissions.allows(rec, None, name)
            gw.prices.lookup(target.provider.name, target.upstream_model)
            del name, target
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4 * MiB, f"kept {(after - before) / MiB:.1f} MiB"
    # Short names are still remembered, within the bound.
    for i in range(MAX_ENTRIES + 10):
        gw.router.route(f"openai/m{i}")
    assert len(gw.router._memo) == MAX_ENTRIES
    assert gw.router._memo.key_chars() <= MAX_ENTRIES * MAX_KEY

    # And the server still answers over its socket.
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status == 200


def test_upstream_429s_for_many_models_keep_a_bounded_pause_table() -> None:
    cfg = Config()
    cfg.providers["p"] = ProviderConfig("p", "openai", "http://127.0.0.1:9/v1")
    q = Quotas(cfg, Counters(1.0), time.time)
    for _ in range(5):
        q.feedback("p", big_name(MiB), 429, "60")  # too long to key a pause
    for i in range(MAX_PAUSED_MODELS + 50):
        q.feedback("p", f"m{i}", 429, "60")
    gate = q.gates["p"]
    assert len(gate.models) == MAX_PAUSED_MODELS
    assert all(len(m) <= MAX_KEY for m in gate.models)
    # Expired pauses make room again.
    for s in gate.models.values():
        s.paused_until = 0.0
    q.feedback("p", "fresh", 429, "60")
    assert list(gate.models) == ["fresh"]


@pytest.fixture
def settled_heap() -> Iterator[None]:
    """The collector as ``aigw serve`` tunes it, put back afterwards."""
    saved = gc.get_threshold()
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


class Cycle:
    """An object in a reference cycle with itself: only the collector frees it."""

    alive = 0

    def __init__(self) -> None:
        self.me = self
        Cycle.alive += 1

    def __del__(self) -> None:
        Cycle.alive -= 1


@pytest.mark.usefixtures("settled_heap")
def test_a_settled_heap_still_frees_cycles_on_its_own() -> None:
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD and gc.get_freeze_count() > 0
    Cycle.alive = 0
    most = 0
    for _ in range(20 * YOUNG_THRESHOLD):
        Cycle()
        most = max(most, Cycle.alive)
    # Without a collection all 200,000 would be alive; the young generation is
    # collected every YOUNG_THRESHOLD allocations, so never many more wait.
    assert most <= 2 * YOUNG_THRESHOLD
    gc.collect()
    assert Cycle.alive == 0


@pytest.mark.usefixtures("settled_heap")
async def test_objects_tracked_stay_bounded_under_load(gateway: RunningGateway) -> None:
    key = await gateway.key()
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"}
    tracked = []
    async with aiohttp.ClientSession() as s:
        for _ in range(10):
            for _ in range(200):
                async with s.post(
                    gateway.url + "/v1/chat/completions", json=body, headers=headers
                ) as r:
                    assert r.status == 200
                    await r.read()
            tracked.append(len(gc.get_objects()))  # frozen start-up objects not counted
    # 2,000 requests: what they leave for the collector stays within a few young
    # generations' worth (a leak of a dozen objects per request would not).
    assert max(tracked) < 3 * YOUNG_THRESHOLD, tracked
