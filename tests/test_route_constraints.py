"""Data residency, the x-aigw-route header and capability matching on single-target routes.

Through the real server with the official SDKs: a caller limited to some regions never
reaches a provider elsewhere (403 region_not_allowed in the client's envelope), the
header only narrows, and a model that cannot serve a request is refused with a 400
that names why.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import hypothesis.strategies as st
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types
from hypothesis import given, settings

from aigw.config import Config, ModelConfig, ProviderConfig
from aigw.config.capabilities import Capabilities
from aigw.errors import GatewayError
from aigw.formats import Call
from aigw.model import Limits
from aigw.routing.capabilities import (
    Requirements,
    requirements,
    requirements_for,
    surely_fits,
    unfit,
)
from aigw.routing.constraints import ROUTE_HEADER, parse_route_header
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeAnthropic, FakeGemini]]:
    o, a, g = FakeOpenAI(), FakeAnthropic(), FakeGemini()
    for fake in (o, a, g):
        await fake.start()
    yield o, a, g
    for fake in (o, a, g):
        await fake.close()


@pytest.fixture
async def gw(
    start_gateway: StartGateway,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    o, a, g = fakes
    monkeypatch.setenv("AIGW_GEM_EU_API_KEY", "gemini-upstream-key")
    cfg = Config()
    url = o.base_url + "/v1"
    cfg.providers = {
        "eu": ProviderConfig("eu", "openai", url, region="eu"),
        "euwest": ProviderConfig("euwest", "openai", url, region="eu-west"),
        "us": ProviderConfig("us", "openai", url, region="us"),
        "plain": ProviderConfig("plain", "openai", url),
        "claude-us": ProviderConfig("claude-us", "anthropic", a.base_url, region="us"),
        "gem-eu": ProviderConfig("gem-eu", "gemini", g.base_url, region="eu"),
    }
    cfg.models = {
        "tiny": ModelConfig(
            "tiny", "eu", "gpt-4o-mini", capabilities=Capabilities(context_window=50)
        ),
        "notools": ModelConfig(
            "notools", "eu", "gpt-4o-mini", capabilities=Capabilities(tools=False)
        ),
        "blind": ModelConfig("blind", "eu", "gpt-4o-mini", capabilities=Capabilities(vision=False)),
        "gem-noschema": ModelConfig(
            "gem-noschema",
            "gem-eu",
            "gemini-2.5-flash",
            capabilities=Capabilities(json_schema=False),
        ),
    }
    return await start_gateway(config=cfg)


async def eu_team_key(gw: RunningGateway, **limits: Any) -> str:
    await gw.gw.store.teams.create("eu-team", Limits(regions=("eu", "eu-west")))
    await gw.gw.directory.refresh()
    return await gw.key(team="eu-team", limits=Limits(**limits))


async def chat(gw: RunningGateway, key: str, model: str, **kw: Any) -> Any:
    async with gw.openai(key) as client:
        return await client.chat.completions.create(model=model, messages=HI, **kw)


# -- regions -------------------------------------------------------------------------


async def test_a_region_limited_team_reaches_only_its_regions(gw: RunningGateway) -> None:
    key = await eu_team_key(gw)
    for model in ("eu/gpt-4o-mini", "euwest/gpt-4o-mini"):
        assert (await chat(gw, key, model)).choices[0].message.content
    for model, where in (("us/gpt-4o-mini", "region us"), ("plain/gpt-4o-mini", "no region")):
        with pytest.raises(openai.PermissionDeniedError) as info:
            await chat(gw, key, model)
        err = info.value
        assert err.status_code == 403 and err.code == "region_not_allowed"
        assert "eu, eu-west" in err.message and where in err.message
    rows = await gw.fetchall("SELECT provider, status FROM ledger ORDER BY id")
    assert [r["status"] for r in rows] == [200, 200, 403, 403]


async def test_a_key_region_replaces_its_teams(gw: RunningGateway) -> None:
    key = await eu_team_key(gw, regions=("us",))
    assert (await chat(gw, key, "us/gpt-4o-mini")).choices
    with pytest.raises(openai.PermissionDeniedError):
        await chat(gw, key, "eu/gpt-4o-mini")


async def test_an_unrestricted_caller_reaches_providers_without_a_region(
    gw: RunningGateway,
) -> None:
    key = await gw.key()
    for model in ("plain/gpt-4o-mini", "us/gpt-4o-mini"):
        assert (await chat(gw, key, model)).choices


async def test_region_refusal_in_the_anthropic_envelope(gw: RunningGateway) -> None:
    key = await eu_team_key(gw)
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as c:
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            await c.messages.create(model="claude-us/claude-sonnet-4-6", max_tokens=10, messages=HI)
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "permission_error"
    assert "eu, eu-west" in body["error"]["message"]


async def test_region_refusal_in_the_gemini_envelope(gw: RunningGateway) -> None:
    key = await gw.key(limits=Limits(regions=("us",)))
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))
    with pytest.raises(gerrors.ClientError) as info:
        await client.aio.models.generate_content(model="gem-eu/gemini-2.5-flash", contents="hi")
    assert info.value.code == 403 and "region" in (info.value.message or "")


# -- the x-aigw-route header ---------------------------------------------------------


async def test_the_header_narrows_an_unrestricted_key(gw: RunningGateway) -> None:
    key = await gw.key()
    header = {ROUTE_HEADER: '{"region": "eu"}'}
    assert (await chat(gw, key, "eu/gpt-4o-mini", extra_headers=header)).choices
    with pytest.raises(openai.PermissionDeniedError) as info:
        await chat(gw, key, "us/gpt-4o-mini", extra_headers=header)
    assert info.value.code == "region_not_allowed"


async def test_the_header_cannot_widen_the_key(gw: RunningGateway) -> None:
    key = await eu_team_key(gw)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await chat(gw, key, "us/gpt-4o-mini", extra_headers={ROUTE_HEADER: '{"region": "us"}'})
    assert info.value.code == "region_not_allowed"
    assert "asks for the regions us" in info.value.message and "eu, eu-west" in info.value.message
    # Narrowing within the key's regions is fine.
    header = {ROUTE_HEADER: '{"region": ["eu-west"]}'}
    assert (await chat(gw, key, "euwest/gpt-4o-mini", extra_headers=header)).choices
    with pytest.raises(openai.PermissionDeniedError):
        await chat(gw, key, "eu/gpt-4o-mini", extra_headers=header)


async def test_max_cost_refuses_a_pricier_model(gw: RunningGateway) -> None:
    key = await gw.key()
    # gpt-4o costs 2.50 in / 10.00 out per million tokens; gpt-4o-mini 0.15 / 0.60.
    cap = {ROUTE_HEADER: '{"max_cost_usd_per_mtok": 5, "strategy": "cost"}'}
    assert (await chat(gw, key, "us/gpt-4o-mini", extra_headers=cap)).choices
    with pytest.raises(openai.BadRequestError) as info:
        await chat(gw, key, "us/gpt-4o", extra_headers=cap)
    assert info.value.code == "max_cost_exceeded"
    assert "10.00 USD per million tokens" in info.value.message
    assert "5.00" in info.value.message
    cap = {ROUTE_HEADER: '{"max_cost_usd_per_mtok": 10}'}
    assert (await chat(gw, key, "us/gpt-4o", extra_headers=cap)).choices
    with pytest.raises(openai.BadRequestError):  # no known price: cannot be under a cap
        await chat(gw, key, "us/no-such-priced-model", extra_headers=cap)


BAD_HEADERS = [
    "not json",
    "[1, 2]",
    '"eu"',
    '{"region": 5}',
    '{"region": []}',
    '{"region": "e u"}',
    '{"region": ["eu", 3]}',
    '{"max_cost_usd_per_mtok": -1}',
    '{"max_cost_usd_per_mtok": true}',
    '{"max_cost_usd_per_mtok": "5"}',
    '{"max_cost_usd_per_mtok": 1e400}',
    '{"strategy": "cheapest"}',
    '{"providers": ["us"]}',
    '{"region": "' + "e" * 2000 + '"}',
]


async def test_malformed_headers_get_a_clear_400(gw: RunningGateway) -> None:
    key = await gw.key()
    for value in BAD_HEADERS:
        with pytest.raises(openai.BadRequestError) as info:
            await chat(gw, key, "us/gpt-4o-mini", extra_headers={ROUTE_HEADER: value})
        assert info.value.code == "invalid_route_header", value
        assert info.value.param == ROUTE_HEADER
        assert len(info.value.message) < 400


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["region", "max_cost_usd_per_mtok", "strategy", "x"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=300), JSONISH.map(json.dumps)))
def test_the_header_parser_never_fails_but_with_a_400(value: str) -> None:
    try:
        parse_route_header(value)
    except GatewayError as exc:
        assert exc.status == 400 and exc.code == "invalid_route_header"


# -- capabilities --------------------------------------------------------------------


async def test_a_prompt_over_the_context_window_is_refused(gw: RunningGateway) -> None:
    key = await gw.key()
    async with gw.openai(key) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "word " * 400}]
            )
        assert info.value.code == "context_length_exceeded"
        assert "context window of 50 tokens" in info.value.message
        assert (await client.chat.completions.create(model="tiny", messages=HI)).choices


async def test_tools_and_images_asked_of_a_model_without_them(gw: RunningGateway) -> None:
    key = await gw.key()
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    image = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    async with gw.openai(key) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="notools", messages=HI, tools=[tool])
        assert info.value.code == "unsupported_capability" and "tool calling" in info.value.message
        assert (await client.chat.completions.create(model="notools", messages=HI)).choices
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="blind", messages=[image])  # type: ignore[list-item]
        assert "image input" in info.value.message
        # The shipped table: an embeddings model has no tools.
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="us/text-embedding-3-small", messages=HI, tools=[tool]
            )
        assert "tool calling" in info.value.message


async def test_a_json_schema_asked_of_a_gemini_route_without_it(gw: RunningGateway) -> None:
    client = genai.Client(api_key=await gw.key(), http_options=types.HttpOptions(base_url=gw.url))
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
    )
    with pytest.raises(gerrors.ClientError) as info:
        await client.aio.models.generate_content(model="gem-noschema", contents="hi", config=config)
    assert info.value.code == 400 and "JSON schema" in (info.value.message or "")
    reply = await client.aio.models.generate_content(model="gem-noschema", contents="hi")
    assert reply.text


def call(body: dict[str, Any], prompt: int = 10, max_output: int | None = None) -> Call:
    return Call(model="m", stream=False, body=body, prompt_estimate=prompt, max_output=max_output)


def test_requirements_in_every_client_format() -> None:
    png = {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    assert requirements(call({"messages": HI})) == Requirements(prompt_tokens=10)
    anthropic_image = {
        "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "output_format": {"type": "json_schema", "schema": {}},
    }
    r = requirements(call(anthropic_image))
    assert r.images and r.reasoning and r.json_schema and not r.tools
    gemini = {
        "contents": [{"role": "user", "parts": [{"inlineData": png}]}],
        "tools": [{"functionDeclarations": []}, {"googleSearch": {}}],
        "generationConfig": {"responseJsonSchema": {}, "thinkingConfig": {"thinkingBudget": 0}},
    }
    r = requirements(call(gemini))
    assert r.images and r.tools and r.json_schema and not r.reasoning
    responses = {
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
        "text": {"format": {"type": "json_schema", "schema": {}}},
        "reasoning": {"effort": "high"},
    }
    r = requirements(call(responses))
    assert r.images and r.json_schema and r.reasoning
    assert not requirements(call(responses), images=False).images
    # The fast path looks only for what the model is known to lack.
    lacking = requirements_for(call(gemini), Capabilities(tools=False, vision=True))
    assert lacking.tools and not lacking.images and not lacking.json_schema


def test_unfit_names_the_first_missing_capability() -> None:
    caps = Capabilities(context_window=100, max_output_tokens=10, tools=False, vision=None)
    assert unfit(caps, Requirements(prompt_tokens=100, images=True)) is None  # unknown: allowed
    misfit = unfit(caps, Requirements(prompt_tokens=101))
    assert misfit is not None and misfit.kind == "context_window"
    # Above the output limit is clamped when translated (forward), never a misfit.
    assert unfit(caps, Requirements(max_output_tokens=11)) is None
    misfit = unfit(caps, Requirements(tools=True))
    assert misfit is not None and misfit.kind == "tools"


_flag = st.one_of(st.none(), st.booleans())


@given(
    caps=st.builds(
        Capabilities,
        context_window=st.one_of(st.none(), st.integers(0, 300)),
        tools=_flag,
        vision=_flag,
        json_schema=_flag,
        reasoning=_flag,
    ),
    req=st.builds(
        Requirements,
        prompt_tokens=st.integers(0, 400),
        tools=st.booleans(),
        images=st.booleans(),
        json_schema=st.booleans(),
        reasoning=st.booleans(),
    ),
)
def test_the_routers_shortcut_never_keeps_a_model_that_is_unfit(
    caps: Capabilities, req: Requirements
) -> None:
    """``surely_fits`` lets the router skip reading the request: it must never say yes
    where :func:`unfit` would refuse."""
    if surely_fits(caps, req.prompt_tokens):
        assert unfit(caps, req) is None
