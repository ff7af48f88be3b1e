"""Memos keyed by client-chosen strings stay bounded: distinct huge model names sent
one after another must not stay in memory."""

from __future__ import annotations

import gc
import secrets
import time
import tracemalloc

import aiohttp

from aigw.config import Config, ProviderConfig
from aigw.limits.gcra import Counters
from aigw.limits.quotas import MAX_PAUSED_MODELS, Quotas
from aigw.memo import MAX_ENTRIES, MAX_KEY, Memo
from aigw.model import Limits, hash_key
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
