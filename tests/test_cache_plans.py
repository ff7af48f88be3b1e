"""Hit plans (aigw.cache.plans): a call repeated byte for byte after a cache hit skips
the body, route and scrub steps, and answers exactly as the full path does; any
change to what those steps read (the key's or team's record, the headers, the body)
or a cleared cache takes the full path again. Official SDK against the fake."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from aigw.cache.plans import Plans
from aigw.model import Limits
from aigw.pipeline import PIPELINES
from aigw.pipeline.body import ReadBody
from aigw.usage import Usage
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Reply
from tests.fakes.openai import FakeOpenAI
from tests.test_response_cache import HI, TEXT, cache, cache_config, chat, start


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")


def plans(gw: RunningGateway) -> Plans:
    body = gw.app[PIPELINES].proxy.steps[1]
    assert isinstance(body, ReadBody) and body.plans is not None
    return body.plans


async def key_id(gw: RunningGateway, key: str) -> str:
    from aigw.model import hash_key

    record = await gw.gw.store.keys.find_by_hash(hash_key(key))
    assert record is not None
    return record.id


_ROW_FIELDS = ("team", "app", "key_id", "model", "endpoint", "status", "stream", "cache")


async def test_a_planned_hit_answers_and_records_like_a_full_one(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    fake_openai.default = Reply(text=TEXT, usage=Usage(1000, 500))
    key = await gw.key()
    async with gw.openai(key) as client:
        answers = [await chat(client, stream=s) for s in (False, False, False, True, True)]
    assert [a[0] for a in answers] == [TEXT] * 5
    assert [h["x-aigw-cache"] for _, h in answers] == ["miss", "hit", "hit", "hit", "hit"]
    # The first hit made the plan; the second used it. A stream has its own body.
    assert plans(gw).used == 2 and len(plans(gw).plans) == 2
    full, planned = answers[1][1], answers[2][1]
    assert {k: v for k, v in full.items() if k not in ("x-request-id", "date")} == {
        k: v for k, v in planned.items() if k not in ("x-request-id", "date")
    }
    rows = [(await gw.gw.store.reports.by_request_id(h["x-request-id"]))[0] for _, h in answers]
    for row in rows[2:]:
        assert [getattr(row, f) for f in _ROW_FIELDS] == [
            getattr(rows[1] if not row.stream else rows[3], f) for f in _ROW_FIELDS
        ]
        assert (row.cost_nusd, row.saved_nusd) == (0, rows[0].cost_nusd)
        assert (row.prompt_tokens, row.completion_tokens) == (1000, 500)
    assert len(fake_openai.requests) == 1


async def test_a_changed_key_record_is_checked_again(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    async with gw.openai(key) as client:
        for _ in range(3):
            await chat(client)
        assert plans(gw).used == 1
        # The key may no longer use the model: the plan must not skip that check.
        await gw.gw.store.keys.set_limits(await key_id(gw, key), Limits(models=("other",)))
        await gw.gw.directory.refresh()
        with pytest.raises(openai.PermissionDeniedError):
            await chat(client)
        await gw.gw.store.keys.set_limits(await key_id(gw, key), Limits(rpm=2))
        await gw.gw.directory.refresh()
        # Allowed again, and admission still counts every planned hit.
        _, h = await chat(client)
        assert h["x-aigw-cache"] == "hit"
        _, h = await chat(client)
        assert h["x-aigw-cache"] == "hit" and plans(gw).used == 2
        with pytest.raises(openai.RateLimitError):
            await chat(client)


async def test_a_cleared_answer_goes_upstream_from_a_fresh_body(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start(start_gateway, fake_openai)
    fake_openai.then(Reply(text="first"), Reply(text="second"))
    key = await gw.key()
    async with gw.openai(key) as client:
        assert [(await chat(client))[0] for _ in range(2)] == ["first", "first"]
        assert len(plans(gw).plans) == 1
        [plan] = plans(gw).plans.values()
        cache(gw).discard(plan.cache_key)  # as `aigw cache clear` or eviction would
        await cache(gw).flush()
        text, h = await chat(client)
        assert (text, h["x-aigw-cache"]) == ("second", "miss")
        assert plans(gw).plans == {}  # forgotten with its answer
        # The upstream got the client's body, intact.
        assert fake_openai.requests[-1].body["messages"] == HI
        assert [(await chat(client))[0] for _ in range(2)] == ["second", "second"]
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    ("extra", "planned"),
    [
        ({"extra_headers": {"Cache-Control": "no-cache"}}, False),
        ({"temperature": 0.5}, False),  # another body
        ({}, True),
    ],
)
async def test_only_the_same_body_and_headers_use_a_plan(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, extra: dict[str, Any], planned: bool
) -> None:
    gw = await start(start_gateway, fake_openai)
    key = await gw.key()
    async with gw.openai(key) as client:
        await chat(client)
        await chat(client)  # a hit: planned
        before = plans(gw).used
        await chat(client, **extra)
    assert plans(gw).used == before + planned


async def test_a_redacted_call_is_not_planned_and_still_restored(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    cfg = cache_config()
    cfg.scrub.actions.update(email="redact")
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")},
        models={"m-openai": ("openai", "gpt-4o-mini")},
        config=cfg,
    )
    fake_openai.default = Reply(text="I will write to [EMAIL_1].")
    key = await gw.key()
    messages = [{"role": "user", "content": "Write to ada@example.com"}]
    async with gw.openai(key) as client:
        texts = []
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="m-openai",
                messages=messages,  # type: ignore[arg-type]
            )
            texts.append((raw.parse().choices[0].message.content, raw.headers["x-aigw-cache"]))
    assert texts[1:] == [("I will write to ada@example.com.", "hit")] * 2
    assert plans(gw).used == 0 and plans(gw).plans == {}


def test_plans_stay_within_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from aigw.cache import plans as plans_mod

    monkeypatch.setattr(plans_mod, "MAX_PLANS", 3)
    memo = Plans()

    class FakePlan:
        def __init__(self, n: int) -> None:
            self.ident = ("key_1", "chat.completions", "/", bytes([n]), ())
            self.key = type("K", (), {"id": "key_1"})()
            self.size = 10

    for n in range(5):
        memo.add(FakePlan(n))  # type: ignore[arg-type]
    assert len(memo.plans) == 3 and memo.bytes == 30 and memo.keys == {"key_1": 3}
    assert [p.ident[3] for p in memo.plans.values()] == [b"\x02", b"\x03", b"\x04"]
    memo.clear()
    assert memo.plans == {} and memo.keys == {} and memo.bytes == 0
