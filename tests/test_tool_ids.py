"""Tool-call ids that survive a change of provider (issue 9 item 2).

A tool conversation started on Gemini (which numbers no ids, so aigw mints them) and
continued on Claude must not repeat ids, and ids minted by other servers
(``functions.get_weather:0``, Kimi K2's form, reported in anomalyco/opencode#1279 as
rejected by Anthropic) must reach Anthropic in its ``^[a-zA-Z0-9_-]+$`` form and come
back to the client as they were. The fake Anthropic refuses repeated and malformed
ids and unpaired tool results in the real API's words (tests/fakes/anthropic.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigw.translate.anthropic import chat_to_messages_request, messages_to_chat_response
from aigw.translate.common import TranslateOptions
from aigw.translate.tool_ids import PREFIX, conversation_seed, from_anthropic, mint, to_anthropic
from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Reply
from tests.fakes.gemini import FakeGemini

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


# -- the id functions -----------------------------------------------------------------


@given(st.text(min_size=1, max_size=200))
def test_to_anthropic_is_reversible_and_matches_the_pattern(call_id: str) -> None:
    out = to_anthropic(call_id)
    assert ANTHROPIC_ID.match(out)
    assert from_anthropic(out) == call_id


@pytest.mark.parametrize("call_id", ["call_abc", "toolu_01A-b_c", "call_0"])
def test_conforming_ids_pass_unchanged(call_id: str) -> None:
    assert to_anthropic(call_id) == call_id
    assert from_anthropic(call_id) == call_id


def test_ids_that_look_encoded_stay_one_to_one() -> None:
    tricky = PREFIX + "Zm9v"  # conforms, but is what "foo" encodes to
    assert to_anthropic(tricky) != to_anthropic("foo")
    assert from_anthropic(to_anthropic(tricky)) == tricky
    # A prefixed id aigw did not make (bad base64, or not the canonical encoding).
    for foreign in (PREFIX + "!!", PREFIX + "Zm9v=", PREFIX + "\u00e9"):
        assert from_anthropic(foreign) == foreign


def test_minted_ids_depend_on_the_conversation_index_and_name() -> None:
    one = conversation_seed({"messages": [{"role": "user", "content": "hi"}]})
    two = conversation_seed({"messages": [{"role": "user", "content": "hi!"}]})
    assert one != two and conversation_seed(None) == ""
    ids = {mint(s, i, n) for s in (one, two) for i in (0, 1) for n in ("a", "b")}
    assert len(ids) == 8 and all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
    # Key order in the request does not change the seed.
    a = {"messages": [{"role": "user", "content": "x", "name": "n"}]}
    b = {"messages": [{"name": "n", "content": "x", "role": "user"}]}
    assert conversation_seed(a) == conversation_seed(b)


def _assistant(*ids: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            for i in ids
        ],
    }


def _tool(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def test_repeated_ids_in_a_history_are_renamed_with_their_results() -> None:
    """Histories recorded before this fix repeat call_0 in every Gemini round."""
    hub = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            _assistant("call_0"),
            _tool("call_0", "sunny"),
            _assistant("call_0", "call_1"),
            _tool("call_0", "rainy"),
            _tool("call_1", "windy"),
        ],
    }
    body = chat_to_messages_request(hub, TranslateOptions("claude")).body
    uses = [b["id"] for m in body["messages"] for b in m["content"] if b["type"] == "tool_use"]
    results = [
        (b["tool_use_id"], b["content"])
        for m in body["messages"]
        for b in m["content"]
        if b["type"] == "tool_result"
    ]
    assert len(set(uses)) == 3 and all(ANTHROPIC_ID.match(u) for u in uses)
    assert uses[0] == "call_0" and uses[2] == "call_1"
    # Each result answers the call of the turn before it.
    assert results == [(uses[0], "sunny"), (uses[1], "rainy"), (uses[2], "windy")]


def test_answer_ids_aigw_encoded_go_back_decoded() -> None:
    encoded = to_anthropic("functions.get_weather:2")
    answer = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "tool_use", "id": encoded, "name": "get_weather", "input": {}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    out = messages_to_chat_response(answer, model="m")
    assert out["choices"][0]["message"]["tool_calls"][0]["id"] == "functions.get_weather:2"


# -- through the server ----------------------------------------------------------------


async def _round(
    client: openai.AsyncOpenAI, model: str, messages: list[Any], *, stream: bool
) -> dict[str, Any]:
    """One chat call; the assistant message as a dict ready to append to the history."""
    if not stream:
        resp = await client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
        return resp.choices[0].message.model_dump(exclude_none=True)
    calls: dict[int, dict[str, Any]] = {}
    text = ""
    async for chunk in await client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, stream=True
    ):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                call = calls.setdefault(
                    tc.index, {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                if tc.id:
                    call["id"] = tc.id
                if tc.function and tc.function.name:
                    call["function"]["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    call["function"]["arguments"] += tc.function.arguments
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = [calls[i] for i in sorted(calls)]
    return msg


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_tool_rounds_continue_on_claude(
    trio: RunningGateway,
    fake_gemini: FakeGemini,
    fake_anthropic: FakeAnthropic,
    stream: bool,
) -> None:
    key = await trio.key()
    history: list[Any] = [{"role": "user", "content": "Weather in Paris, then Lyon?"}]
    ids: list[str] = []
    async with trio.openai(key) as client:
        for city in ("Paris", "Lyon"):
            fake_gemini.then(Reply(tool_calls=[("get_weather", {"city": city})]))
            msg = await _round(client, "m-gemini", history, stream=stream)
            (call,) = msg["tool_calls"]
            assert json.loads(call["function"]["arguments"]) == {"city": city}
            ids.append(call["id"])
            history += [msg, _tool(call["id"], f"{city}: sunny")]
        assert ids[0] != ids[1]  # both were call_0 before

        # The same history again: the same id (retries and prompt caches see one id).
        fake_gemini.then(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
        replay = await _round(client, "m-gemini", history[:1], stream=stream)
        assert replay["tool_calls"][0]["id"] == ids[0]

        fake_anthropic.then(Reply(text="Both sunny."))
        final = await _round(client, "m-anthropic", history, stream=stream)
    assert final["content"] == "Both sunny."
    sent = fake_anthropic.last.body["messages"]
    uses = [b["id"] for m in sent for b in m["content"] if b["type"] == "tool_use"]
    assert uses == ids


async def test_foreign_ids_reach_claude_in_its_pattern(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    """Kimi-style ids, two rounds (its counter restarts too), continued on Claude."""
    history: list[Any] = [
        {"role": "user", "content": "Weather in Paris and Lyon?"},
        _assistant("functions.get_weather:0", "functions.get_weather:1"),
        _tool("functions.get_weather:0", "Paris: sunny"),
        _tool("functions.get_weather:1", "Lyon: rainy"),
        _assistant("functions.get_weather:0"),
        _tool("functions.get_weather:0", "Nice: windy"),
    ]
    fake_anthropic.then(Reply(tool_calls=[("get_weather", {"city": "Lille"})]))
    key = await trio.key()
    async with trio.openai(key) as client:
        msg = await _round(client, "m-anthropic", history, stream=False)
    # Anthropic's own id of the new call reaches the client untouched.
    assert msg["tool_calls"][0]["id"].startswith("toolu_")
    sent = fake_anthropic.last.body["messages"]
    uses = [b["id"] for m in sent for b in m["content"] if b["type"] == "tool_use"]
    assert len(set(uses)) == 3 and all(ANTHROPIC_ID.match(u) for u in uses)
    assert [from_anthropic(u) for u in uses[:2]] == [
        "functions.get_weather:0",
        "functions.get_weather:1",
    ]
