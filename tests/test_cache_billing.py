"""Prompt-cache writes are billed at their own rates, to the nano-dollar.

* OpenAI GPT-5.6/GPT-6 report cache writes in ``prompt_tokens_details.cache_write_tokens``
  (chat) and ``input_tokens_details.cache_write_tokens`` (Responses): the field names and
  places are openai-python's ``CompletionUsage.PromptTokensDetails`` and
  ``ResponseUsage.InputTokensDetails``; the fake renders them there.
* Anthropic splits ``cache_creation_input_tokens`` by TTL in ``cache_creation``
  (``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``), as recorded in
  anthropic-sdk-python ``tests/fixtures/fable-fallback/stream-b-fallback.sse``; a 1-hour
  write costs 2x input, a 5-minute one 1.25x.

Each test computes the expected cost by hand from the price table's published rates.
"""

from __future__ import annotations

import anthropic
import pytest
from google import genai
from google.genai import types

from aigw.usage import Usage
from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Reply
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]

# google-genai subclasses aiohttp's ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


async def _cost(gw: RunningGateway, request_id: str) -> int | None:
    rows = await gw.gw.store.reports.by_request_id(request_id)
    assert len(rows) == 1
    return rows[0].cost_nusd


# gpt-5.6-sol: the rates are read from the shipped table below.
OPENAI_USAGE = Usage(
    prompt_tokens=12_345, completion_tokens=678, cached_tokens=4_096, cache_write_tokens=6_144
)


def _openai_expected(input_: int, cached: int, write: int, output: int) -> int:
    """Rates in micro-USD per million tokens -> nano-USD (exact: every product is a
    multiple of 1000 here)."""
    u = OPENAI_USAGE
    fresh = u.prompt_tokens - u.cached_tokens - u.cache_write_tokens
    pico = (
        fresh * input_
        + u.cached_tokens * cached
        + u.cache_write_tokens * write
        + u.completion_tokens * output
    )
    assert pico % 1000 == 0
    return pico // 1000


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_cache_writes_billed_at_the_write_rate(
    trio: RunningGateway, fake_openai: FakeOpenAI, stream: bool
) -> None:
    fake_openai.then(Reply(usage=OPENAI_USAGE))
    key = await trio.key()
    async with trio.openai(key) as client:
        if stream:
            async with client.chat.completions.with_streaming_response.create(
                model="openai/gpt-5.6-sol",
                messages=HI,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            ) as raw:
                rid = raw.headers["x-request-id"]
                async for _ in raw.iter_lines():
                    pass
        else:
            resp = await client.chat.completions.with_raw_response.create(
                model="openai/gpt-5.6-sol",
                messages=HI,  # type: ignore[arg-type]
            )
            rid = resp.headers["x-request-id"]
            usage = resp.parse().usage
            assert usage is not None and usage.prompt_tokens_details is not None
            # the client sees the field the SDK types declare
            assert usage.prompt_tokens_details.cache_write_tokens == 6_144
    price = trio.gw.prices.lookup("openai", "gpt-5.6-sol")
    assert price is not None
    t = price.base
    assert t.cache_write != t.input  # the test means something only if the rates differ
    expected = _openai_expected(t.input, t.cached_input, t.cache_write, t.output)
    # 2,105 fresh x $4 + 4,096 cached x $0.40 + 6,144 written x $5 + 678 out x $20 per M
    assert expected == 8_420_000 + 1_638_400 + 30_720_000 + 13_560_000
    assert await _cost(trio, rid) == expected


async def test_openai_responses_cache_writes_billed(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Reply(usage=OPENAI_USAGE))
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.responses.with_raw_response.create(
            model="openai/gpt-5.6-sol", input="hi"
        )
    price = trio.gw.prices.lookup("openai", "gpt-5.6-sol")
    assert price is not None
    t = price.base
    expected = _openai_expected(t.input, t.cached_input, t.cache_write, t.output)
    assert await _cost(trio, raw.headers["x-request-id"]) == expected


# claude-sonnet-4-6: $3 input, $3.75 5m write, $6 1h write, $0.30 read, $15 output.
ANTHROPIC_USAGE = Usage(
    prompt_tokens=3 + 2_000 + 10_000 + 7_000,
    completion_tokens=250,
    cached_tokens=2_000,
    cache_write_tokens=17_000,
    cache_write_1h_tokens=10_000,
)
# micro-USD-per-million rates x tokens = pico-USD; / 1000 = nano-USD.
SONNET_46_NUSD = (
    3 * 3_000_000  # fresh input
    + 2_000 * 300_000  # cache reads
    + 7_000 * 3_750_000  # 5-minute writes
    + 10_000 * 6_000_000  # 1-hour writes
    + 250 * 15_000_000  # output
) // 1000


def test_expected_sonnet_cost_is_the_published_arithmetic() -> None:
    # $0.000009 + $0.0006 + $0.02625 + $0.06 + $0.00375 = $0.090609
    assert SONNET_46_NUSD == 90_609_000


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_1h_cache_writes_billed_at_the_1h_rate(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, stream: bool
) -> None:
    fake_anthropic.then(Reply(usage=ANTHROPIC_USAGE))
    key = await trio.key()
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as c:
        if stream:
            async with c.messages.with_streaming_response.create(
                model="anthropic/claude-sonnet-4-6",
                max_tokens=100,
                messages=HI,  # type: ignore[arg-type]
                stream=True,
            ) as raw:
                rid = raw.headers["x-request-id"]
                async for _ in raw.iter_lines():
                    pass
        else:
            resp = await c.messages.with_raw_response.create(
                model="anthropic/claude-sonnet-4-6",
                max_tokens=100,
                messages=HI,  # type: ignore[arg-type]
            )
            rid = resp.headers["x-request-id"]
            msg = await resp.parse()
            assert msg.usage.cache_creation is not None
            assert msg.usage.cache_creation.ephemeral_1h_input_tokens == 10_000
    assert await _cost(trio, rid) == SONNET_46_NUSD


async def test_anthropic_1h_writes_billed_for_openai_clients(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    """The translated path (OpenAI client -> Anthropic target) bills the same."""
    fake_anthropic.then(Reply(usage=ANTHROPIC_USAGE))
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="anthropic/claude-sonnet-4-6",
            messages=HI,  # type: ignore[arg-type]
        )
    assert await _cost(trio, raw.headers["x-request-id"]) == SONNET_46_NUSD
    assert raw.headers["x-aigw-cost-usd"] == "0.090609000"


async def test_only_5m_writes_cost_less_than_the_same_tokens_written_for_1h(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    five = Usage(
        prompt_tokens=ANTHROPIC_USAGE.prompt_tokens,
        completion_tokens=250,
        cached_tokens=2_000,
        cache_write_tokens=17_000,
    )
    fake_anthropic.then(Reply(usage=five))
    key = await trio.key()
    async with trio.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="anthropic/claude-sonnet-4-6",
            messages=HI,  # type: ignore[arg-type]
        )
    # the 10,000 tokens at $3.75 instead of $6: $0.0225 less
    assert await _cost(trio, raw.headers["x-request-id"]) == SONNET_46_NUSD - 22_500_000


# -- what clients of another format see of the cache (issue 9 item 6) ----------------


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_client_sees_anthropic_cache_reads_and_writes(
    trio: RunningGateway, fake_anthropic: FakeAnthropic, stream: bool
) -> None:
    fake_anthropic.then(Reply(usage=ANTHROPIC_USAGE))
    key = await trio.key()
    async with trio.openai(key) as client:
        if stream:
            chunks = await client.chat.completions.create(
                model="anthropic/claude-sonnet-4-6",
                messages=HI,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = None
            async for chunk in chunks:
                usage = chunk.usage or usage
        else:
            resp = await client.chat.completions.create(
                model="anthropic/claude-sonnet-4-6",
                messages=HI,  # type: ignore[arg-type]
            )
            usage = resp.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens == 19_003  # input + cache reads + cache writes
    assert usage.prompt_tokens_details.cached_tokens == 2_000
    assert usage.prompt_tokens_details.cache_write_tokens == 17_000


async def test_anthropic_client_sees_openai_cache_writes(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Reply(usage=OPENAI_USAGE))
    key = await trio.key()
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as c:
        msg = await c.messages.create(
            model="openai/gpt-5.6-sol",
            max_tokens=100,
            messages=HI,  # type: ignore[arg-type]
        )
    assert msg.usage.cache_creation_input_tokens == 6_144
    assert msg.usage.cache_read_input_tokens == 4_096
    assert msg.usage.input_tokens == 12_345 - 6_144 - 4_096


async def test_gemini_client_sees_anthropic_cache_reads(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    """Gemini's usageMetadata has a field for cache reads (cachedContentTokenCount) and
    none for writes (google-genai's GenerateContentResponseUsageMetadata): writes stay
    counted in promptTokenCount, as Gemini counts every prompt token there."""
    fake_anthropic.then(Reply(usage=ANTHROPIC_USAGE))
    key = await trio.key()
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=trio.url))
    try:
        resp = await client.aio.models.generate_content(
            model="anthropic/claude-sonnet-4-6", contents="hi"
        )
    finally:
        await client.aio.aclose()
    meta = resp.usage_metadata
    assert meta is not None
    assert meta.prompt_token_count == 19_003
    assert meta.cached_content_token_count == 2_000
