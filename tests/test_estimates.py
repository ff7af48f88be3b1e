"""The prompt bound that hard budgets reserve is an upper bound for any input."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigw.tokens import (
    IMAGE_BOUND,
    IMAGE_TOKENS,
    UNBOUNDED,
    Kind,
    bound,
    estimate,
    media_parts,
    prompt,
)
from aigw.usage import Usage
from tests.conftest import RunningGateway
from tests.fakes.base import Reply
from tests.fakes.openai import FakeOpenAI
from tests.limitkit import team

MiB = 1 << 20
PARAMS = {"model", "stream", "max_tokens", "temperature"}


async def test_a_huge_prompt_without_spaces_is_refused_up_front_under_a_budget(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    """900 KiB of text without a space once counted as one image (1,000 tokens). A
    provider bills it as text; here it bills 100,000 tokens ($0.04 on gpt-4.1-mini,
    whose 1M-token context window takes the ~230,000-token estimate: on gpt-4o-mini
    the route would refuse it as too long for the model before the budget could)."""
    fake_openai.default = Reply(usage=Usage(prompt_tokens=100_000, completion_tokens=7))
    budget = 10_000_000  # $0.01
    await team(gateway, "t", budget_nusd=budget)
    key = await gateway.key(team="t")
    blob = "a" * (900 * 1024)
    async with gateway.openai(key) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(
                model="openai/gpt-4.1-mini",
                messages=[{"role": "user", "content": blob}],
                max_tokens=20,
            )
        assert caught.value.code == "budget_exceeded"
        assert fake_openai.requests == []  # refused before the provider saw it
        # A normal call (billed normally) still fits.
        fake_openai.default = Reply()
        await client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
    row = await gateway.fetchone("SELECT SUM(cost_nusd) FROM ledger WHERE team = 't'")
    assert row is not None and row[0] <= budget


def test_text_without_spaces_is_text_outside_a_declared_image() -> None:
    blob = "iVBORw0KGgo" * 100_000
    # The same data as an image part, and as a look-alike in a tool call's arguments
    # (which the provider reads as text).
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + blob}}
    as_text = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c",
                "type": "function",
                "function": {"name": "f", "arguments": '{"content": [' + blob + "]}"},
            }
        ],
    }
    with_image = prompt({"messages": [{"role": "user", "content": [image]}]}, "chat")
    assert with_image.tokens < IMAGE_TOKENS + 100
    assert with_image.bound < IMAGE_BOUND + 200
    faked = prompt({"messages": [as_text]}, "chat")
    assert faked.bound >= len(blob)
    assert faked.tokens >= len(blob) // 4
    # Anthropic: an image block inside tool_use input is not an image.
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": blob}}
    ok = {"messages": [{"role": "user", "content": [img]}]}
    sneaky = {
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "input": {"content": [img]}}]}
        ]
    }
    assert prompt(ok, "messages").bound < IMAGE_BOUND + 200
    assert prompt(sneaky, "messages").bound >= len(blob)
    # Gemini: only an image/* inline part is an image; a PDF counts its bytes.
    part = {"inlineData": {"mimeType": "image/png", "data": blob}}
    pdf = {"inlineData": {"mimeType": "application/pdf", "data": blob}}
    assert prompt({"contents": [{"parts": [part]}]}, "gemini").bound < IMAGE_BOUND + 200
    doc = prompt({"contents": [{"parts": [pdf]}]}, "gemini")
    assert doc.bound >= len(blob)
    assert doc.tokens < IMAGE_TOKENS + 100  # typical estimate: inline file data


def test_context_the_request_does_not_carry_has_no_byte_bound() -> None:
    assert prompt({"input": "hi", "previous_response_id": "r"}, "responses").bound >= UNBOUNDED
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    assert prompt({"messages": [], "tools": tools}, "messages").bound >= UNBOUNDED
    gemini_tools: list[dict[str, Any]] = [{"googleSearch": {}}]
    assert prompt({"contents": [], "tools": gemini_tools}, "gemini").bound >= UNBOUNDED
    assert prompt({"messages": [], "tools": [{"type": "function"}]}, "chat").bound < UNBOUNDED


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [{"a": deep}]
    assert estimate(deep) > 0
    assert bound(deep) > 100_000
    assert prompt({"messages": deep}, "chat").bound > 100_000


# -- property: the bound is never below one token per byte of text -----------------------

# Text as clients send it and as attackers do: any code point, no spaces, long runs.
text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=300),
    st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(0, 5000)),
)
scalars = st.one_of(
    text, st.integers(-(2**63), 2**63), st.floats(allow_nan=False), st.booleans(), st.none()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys=text, values=inner, max_size=4)
    ),
    max_leaves=30,
)


def _parts(draw_image: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return st.lists(st.one_of(draw_image, json_values), max_size=4)


openai_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": text})}
    ),
    st.fixed_dictionaries({"type": st.just("input_image"), "image_url": text}),
    st.fixed_dictionaries({"type": st.just("file"), "file": json_values}),
)
anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries(
        {"type": st.just("image"), "source": st.fixed_dictionaries({"data": text})}
    ),
    st.fixed_dictionaries({"type": st.just("tool_use"), "input": json_values}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "content": json_values}),
)
gemini_part = st.one_of(
    st.fixed_dictionaries({"text": text}),
    st.fixed_dictionaries(
        {
            "inlineData": st.fixed_dictionaries(
                {"mimeType": st.sampled_from(["image/png", "application/pdf", "x"]), "data": text}
            )
        }
    ),
    st.fixed_dictionaries({"functionCall": json_values}),
)
message = st.fixed_dictionaries(
    {"role": text, "content": st.one_of(text, _parts(openai_part), _parts(anthropic_block))}
)
bodies: dict[Kind, st.SearchStrategy[dict[str, Any]]] = {
    "chat": st.fixed_dictionaries(
        {"model": text, "messages": st.lists(message, max_size=4)},
        optional={"tools": st.lists(json_values, max_size=3), "response_format": json_values},
    ),
    "responses": st.fixed_dictionaries(
        {"input": st.one_of(text, st.lists(message, max_size=4))},
        optional={"instructions": text, "text": json_values},
    ),
    "messages": st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=4)},
        optional={"system": st.one_of(text, json_values), "tools": st.lists(json_values)},
    ),
    "gemini": st.fixed_dictionaries(
        {
            "contents": st.lists(
                st.fixed_dictionaries({"parts": st.lists(gemini_part, max_size=4)}), max_size=4
            )
        },
        optional={"generationConfig": json_values},
    ),
}


def plausible_upper_bound(body: dict[str, Any], kind: Kind) -> int:
    """What a provider could bill at most: one token per UTF-8 byte of every key and
    string, one per number, bool or null; a declared image as its flat allowance."""
    media = media_parts(body, kind)
    total = 0
    stack: list[Any] = [v for k, v in body.items() if k not in PARAMS]
    total += sum(len(k.encode("utf-8", "surrogatepass")) for k in body if k not in PARAMS)
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v.encode("utf-8", "surrogatepass"))
        elif isinstance(v, dict):
            if media.get(id(v)) is True:
                total += IMAGE_BOUND
                continue
            total += sum(len(k.encode("utf-8", "surrogatepass")) for k in v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        else:
            total += len(str(v))
    return total


@pytest.mark.parametrize("kind", list(bodies))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_bound_covers_one_token_per_byte(kind: Kind, data: st.DataObject) -> None:
    body = data.draw(bodies[kind])
    est = prompt(body, kind)
    assert est.bound >= plausible_upper_bound(body, kind)
    assert est.bound >= est.tokens
