"""Issue 9 items 1 and 6: what a translated request and a translated error look like.

Through the real server, official SDKs on the client side and the fake providers on the
other, asserting what the fake received / what the SDK raised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

PAYLOADS = Path(__file__).parent / "translate" / "payloads"


# -- item 1: max_completion_tokens on every translated path to an openai target --------


async def test_anthropic_client_to_openai_sends_max_completion_tokens(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await trio.key()
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as c:
        await c.messages.create(
            model="m-openai",
            max_tokens=321,
            messages=[{"role": "user", "content": "hi"}],
        )
    body = fake_openai.last.body
    # o1/o3/o4/GPT-5 reject the legacy name: only the new one goes out.
    assert body["max_completion_tokens"] == 321
    assert "max_tokens" not in body


async def test_gemini_client_to_openai_sends_max_completion_tokens(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await trio.key()
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=trio.url))
    try:
        await client.aio.models.generate_content(
            model="m-openai",
            contents="hi",
            config=types.GenerateContentConfig(max_output_tokens=123),
        )
    finally:
        await client.aio.aclose()
    body = fake_openai.last.body
    assert body["max_completion_tokens"] == 123
    assert "max_tokens" not in body


async def test_openai_client_native_passthrough_keeps_max_tokens(
    trio: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await trio.key()
    async with trio.openai(key) as c:
        await c.chat.completions.create(
            model="m-openai", messages=[{"role": "user", "content": "hi"}], max_tokens=77
        )
    body = fake_openai.last.body
    assert body["max_tokens"] == 77
    assert "max_completion_tokens" not in body


# -- item 6: upstream errors in OpenAI's vocabulary ------------------------------------

# Anthropic's documented 429 body (docs.anthropic.com/en/api/errors and rate-limits):
ANTHROPIC_429 = {
    "type": "error",
    "error": {
        "type": "rate_limit_error",
        "message": "Number of request tokens has exceeded your per-minute rate limit "
        "(https://docs.anthropic.com/en/api/rate-limits); see the response headers for "
        "current usage. Please reduce the prompt length or the maximum tokens requested, "
        "or try again later.",
    },
}
# Anthropic's documented 529 body.
ANTHROPIC_529 = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def _gemini_429() -> bytes:
    recorded: Any = json.loads(
        (PAYLOADS / "gemini" / "error_429_resource_exhausted.json").read_text()
    )
    return json.dumps(recorded["body"]).encode()


async def test_anthropic_429_reaches_openai_sdk_as_rate_limit_exceeded(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.then(Fail(429, body=json.dumps(ANTHROPIC_429).encode()))
    key = await trio.key()
    async with trio.openai(key) as c:
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(
                model="m-anthropic", messages=[{"role": "user", "content": "hi"}]
            )
    err = info.value
    assert err.code == "rate_limit_exceeded"
    assert err.type == "tokens"  # OpenAI names the exhausted limit: requests or tokens
    assert "rate_limit_error" not in json.dumps(err.body)


async def test_gemini_resource_exhausted_reaches_openai_sdk_as_rate_limit_exceeded(
    trio: RunningGateway, fake_gemini: FakeGemini
) -> None:
    fake_gemini.then(Fail(429, body=_gemini_429()))
    key = await trio.key()
    async with trio.openai(key) as c:
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(
                model="m-gemini", messages=[{"role": "user", "content": "hi"}]
            )
    err = info.value
    assert err.code == "rate_limit_exceeded"
    assert err.type == "requests"
    assert "RESOURCE_EXHAUSTED" not in json.dumps(err.body)


async def test_anthropic_overloaded_reaches_openai_sdk_as_server_error(
    trio: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.then(Fail(529, body=json.dumps(ANTHROPIC_529).encode()))
    key = await trio.key()
    async with trio.openai(key) as c:
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(
                model="m-anthropic", messages=[{"role": "user", "content": "hi"}]
            )
    err = info.value
    assert (err.type, err.code) == ("server_error", "overloaded")


@pytest.mark.parametrize(
    ("status", "upstream", "expected"),
    [
        (400, "invalid_request_error", ("invalid_request_error", None)),
        (400, "INVALID_ARGUMENT", ("invalid_request_error", None)),
        (404, "not_found_error", ("invalid_request_error", "not_found")),
        (404, "NOT_FOUND", ("invalid_request_error", "not_found")),
        (500, "api_error", ("server_error", None)),
        (500, "INTERNAL", ("server_error", None)),
        (503, "UNAVAILABLE", ("server_error", "overloaded")),
        (529, "overloaded_error", ("server_error", "overloaded")),
        (504, "DEADLINE_EXCEEDED", ("server_error", "timeout")),
    ],
)
def test_openai_error_kind_table(
    status: int, upstream: str, expected: tuple[str, str | None]
) -> None:
    from aigw.errors import openai_error_kind

    assert openai_error_kind(status, upstream, "boom") == expected
