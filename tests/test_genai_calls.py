"""google-genai's calls besides generateContent, through the gateway (issue 9 item 5):
models.list and models.get in Gemini's format, countTokens, embedContent and
batchEmbedContents, and Google's error envelope for everything else on its routes.

The SDK talks to the real server; the fakes answer as the real APIs do (their model
lists are trimmed from real answers: tests/fakes/*.py say where each comes from).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types

from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


def sdk(gw: RunningGateway, key: str, api_version: str | None = None) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=gw.url,
            api_version=api_version,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


@pytest.fixture
async def ready(trio: RunningGateway) -> RunningGateway:
    """The trio gateway once every provider's model list has been fetched."""
    assert trio.gw.model_lists is not None
    await trio.gw.model_lists.first_round.wait()
    return trio


@pytest.fixture
async def client(ready: RunningGateway) -> AsyncIterator[genai.client.AsyncClient]:
    c = sdk(ready, await ready.key()).aio
    yield c
    await c.aclose()


async def test_models_list_in_gemini_format(client: genai.client.AsyncClient) -> None:
    models = [m async for m in await client.models.list()]
    names = [m.name for m in models]
    # Aliases and every provider's own models, as "models/ID" so they go back in as is.
    assert "models/m-gemini" in names and "models/m-openai" in names
    assert "models/gemini/gemini-2.5-flash" in names
    assert "models/openai/gpt-4o-mini" in names
    assert "models/anthropic/claude-sonnet-4-6" in names
    assert "models/gemini/imagen-4.0-generate-001" not in names  # predict: not served
    flash = next(m for m in models if m.name == "models/gemini/gemini-2.5-flash")
    # What Google said about it, kept.
    assert flash.display_name == "Gemini 2.5 Flash"
    assert flash.input_token_limit == 1048576 and flash.output_token_limit == 65536
    assert flash.supported_actions == ["generateContent", "countTokens"]
    alias = next(m for m in models if m.name == "models/m-gemini")
    assert alias.display_name == "Gemini 2.5 Flash"
    embed = next(m for m in models if m.name == "models/gemini/gemini-embedding-001")
    assert embed.supported_actions == ["countTokens", "embedContent"]
    claude = next(m for m in models if m.name == "models/anthropic/claude-sonnet-4-6")
    assert claude.display_name == "Claude Sonnet 4.6"


async def test_models_list_pages(client: genai.client.AsyncClient) -> None:
    everything = [m.name async for m in await client.models.list()]
    pager = await client.models.list(config={"page_size": 3})
    assert len(pager.page) == 3
    paged = [m.name async for m in pager]
    assert paged == everything and len(everything) > 3


async def test_models_list_on_v1_with_the_key_header(ready: RunningGateway) -> None:
    """google-genai on api_version v1 calls GET /v1/models, the OpenAI path: the key
    header tells it apart."""
    client = sdk(ready, await ready.key(), "v1").aio
    names = [m.name async for m in await client.models.list()]
    assert "models/m-gemini" in names
    got = await client.models.get(model="m-openai")
    assert got.name == "models/m-openai"
    await client.aclose()
    async with ready.openai(await ready.key()) as oai:
        ids = [m.id async for m in oai.models.list()]
    assert "m-gemini" in ids and "openai/gpt-4o-mini" in ids


async def test_models_get(client: genai.client.AsyncClient) -> None:
    got = await client.models.get(model="gemini/gemini-2.5-pro")
    assert got.name == "models/gemini/gemini-2.5-pro"
    assert got.display_name == "Gemini 2.5 Pro"
    alias = await client.models.get(model="models/m-anthropic")
    assert alias.name == "models/m-anthropic"
    # A bare family name routes, so it can be looked up too.
    bare = await client.models.get(model="gemini-2.5-flash")
    assert bare.input_token_limit == 1048576
    with pytest.raises(gerrors.ClientError) as e:
        await client.models.get(model="gemini/no-such-model")
    assert e.value.code == 404 and e.value.status == "NOT_FOUND"


async def test_models_get_respects_the_keys_models(ready: RunningGateway) -> None:
    from aigw.model import Limits

    key = await ready.key(limits=Limits(models=("gemini/*",)))
    client = sdk(ready, key).aio
    names = [m.name async for m in await client.models.list()]
    # Its own models, and the alias that resolves to one of them.
    assert names and all(n.startswith("models/gemini/") or n == "models/m-gemini" for n in names)
    with pytest.raises(gerrors.ClientError) as e:
        await client.models.get(model="m-openai")
    assert e.value.code == 404
    await client.aclose()


async def test_count_tokens_native_to_gemini(
    client: genai.client.AsyncClient, fake_gemini: FakeGemini
) -> None:
    result = await client.models.count_tokens(model="m-gemini", contents="twelve chars")
    assert result.total_tokens == 3
    assert fake_gemini.last.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert fake_gemini.last.body == {
        "contents": [{"parts": [{"text": "twelve chars"}], "role": "user"}]
    }


async def test_count_tokens_translated_to_anthropic(
    ready: RunningGateway, client: genai.client.AsyncClient, fake_anthropic: FakeAnthropic
) -> None:
    result = await client.models.count_tokens(
        model="m-anthropic", contents="How many tokens is this sentence?"
    )
    assert fake_anthropic.last.path == "/v1/messages/count_tokens"
    sent = fake_anthropic.last.body
    assert sent["model"] == "claude-sonnet-4-6" and "max_tokens" not in sent
    assert sent["messages"][0]["role"] == "user"
    assert result.total_tokens == 10  # the fake's count of the messages' 41 characters
    rows = await ready.fetchall("SELECT COUNT(*) FROM ledger")
    assert rows[0][0] == 0  # counting is free and not billed


async def test_count_tokens_estimated_for_openai(ready: RunningGateway, key_header: Any) -> None:
    key = await ready.key()
    body = {"contents": [{"role": "user", "parts": [{"text": "How many tokens is this?"}]}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            ready.url + "/v1beta/models/m-openai:countTokens",
            json=body,
            headers=key_header(key),
        ) as r,
    ):
        assert r.status == 200, await r.text()
        assert r.headers["x-aigw-token-count"] == "estimated"
        assert 3 <= (await r.json())["totalTokens"] <= 30


@pytest.fixture
def key_header() -> Any:
    return lambda key: {"x-goog-api-key": key}


async def test_anthropic_client_counts_on_a_gemini_target(
    ready: RunningGateway, fake_gemini: FakeGemini
) -> None:
    """The count step is one for both clients: an Anthropic client's count reaches a
    Gemini target as countTokens (a whole generateContentRequest: it has a system)."""
    key = await ready.key()
    async with anthropic.AsyncAnthropic(base_url=ready.url, api_key=key, max_retries=0) as c:
        raw = await c.messages.with_raw_response.count_tokens(
            model="m-gemini",
            system="Be brief.",
            messages=[{"role": "user", "content": "twelve chars"}],
        )
    assert raw.headers["x-aigw-token-count"] == "exact"
    assert (await raw.parse()).input_tokens == 3
    sent = fake_gemini.last.body["generateContentRequest"]
    assert sent["model"] == "models/gemini-2.5-flash"
    assert sent["systemInstruction"]["parts"] == [{"text": "Be brief."}]


async def ledger(gw: RunningGateway) -> list[Any]:
    rows = await gw.fetchall(
        "SELECT endpoint, provider, model, status, prompt_tokens FROM ledger ORDER BY id"
    )
    return [tuple(r) for r in rows]


async def test_embed_native_to_gemini(
    ready: RunningGateway, client: genai.client.AsyncClient, fake_gemini: FakeGemini
) -> None:
    one = await client.models.embed_content(
        model="gemini/gemini-embedding-001",
        contents="hello",
        config=types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=4),
    )
    assert [e.values for e in one.embeddings or []] == [[0.1, 0.2, 0.3, 0.0]]
    assert fake_gemini.last.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    req = fake_gemini.last.body["requests"][0]
    assert req["model"] == "models/gemini-embedding-001"
    assert req["taskType"] == "RETRIEVAL_QUERY" and req["outputDimensionality"] == 4
    several = await client.models.embed_content(
        model="gemini/gemini-embedding-001", contents=["a", "b", "c"]
    )
    assert len(several.embeddings or []) == 3
    rows = await ledger(ready)
    assert [tuple(r)[:4] for r in rows] == [
        ("batchEmbedContents", "gemini", "gemini/gemini-embedding-001", 200),
    ] * 2
    assert all(r[4] > 0 for r in rows)


async def test_embed_translated_to_openai(
    ready: RunningGateway, client: genai.client.AsyncClient, fake_openai: FakeOpenAI
) -> None:
    several = await client.models.embed_content(
        model="openai/text-embedding-3-small",
        contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=3, task_type="CLUSTERING"),
    )
    values = [e.values for e in several.embeddings or []]
    assert values == [pytest.approx([0.1, 0.2, 0.3]), pytest.approx([0.2, 0.2, 0.3])]
    assert fake_openai.last.path == "/v1/embeddings"
    assert fake_openai.last.body == {
        "model": "text-embedding-3-small",
        "input": ["first text", "second text"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    one = await client.models.embed_content(
        model="openai/text-embedding-3-small", contents="only one"
    )
    assert len(one.embeddings or []) == 1
    rows = await ledger(ready)
    # Billed with the provider's own usage (the fake counts 5 tokens an input).
    assert rows == [
        ("batchEmbedContents", "openai", "openai/text-embedding-3-small", 200, 10),
        ("batchEmbedContents", "openai", "openai/text-embedding-3-small", 200, 5),
    ]


async def test_embed_content_single_call_translated(
    ready: RunningGateway, key_header: Any, fake_openai: FakeOpenAI
) -> None:
    """embedContent (one content, no batch), as REST clients and older SDKs call it."""
    key = await ready.key()
    body = {"content": {"parts": [{"text": "hi"}]}, "taskType": "RETRIEVAL_DOCUMENT"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            ready.url + "/v1beta/models/m-openai:embedContent", json=body, headers=key_header(key)
        ) as r,
    ):
        assert r.status == 200, await r.text()
        assert (await r.json()) == {"embedding": {"values": pytest.approx([0.1, 0.2, 0.3])}}
        assert "taskType" in r.headers["x-aigw-warning"]
        assert float(r.headers["x-aigw-cost-usd"]) >= 0


async def test_embed_refused_for_anthropic(client: genai.client.AsyncClient) -> None:
    with pytest.raises(gerrors.ClientError) as e:
        await client.models.embed_content(model="m-anthropic", contents="x")
    assert e.value.code == 400 and "offers no embeddings" in (e.value.message or "")


async def test_embed_upstream_error_in_googles_envelope(
    client: genai.client.AsyncClient, fake_gemini: FakeGemini
) -> None:
    fake_gemini.then(Fail(429, "Quota exceeded for metric"))
    with pytest.raises(gerrors.ClientError) as e:
        await client.models.embed_content(model="gemini/gemini-embedding-001", contents="x")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"


BAD_EMBEDS = [
    ("batchEmbedContents", {"requests": []}, "requests"),
    ("batchEmbedContents", {"requests": "x"}, "requests"),
    ("batchEmbedContents", {"requests": [{"content": {"parts": []}}]}, "parts"),
    ("batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "a"}]}}] * 101}, "100"),
    (
        "batchEmbedContents",
        {"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]},
        "model",
    ),
    ("embedContent", {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 0}, "Dim"),
    ("embedContent", [], "object"),
    ("countTokens", {"contents": []}, "contents"),
    ("countTokens", {"generateContentRequest": 3}, "generateContentRequest"),
]


@pytest.mark.parametrize(("method", "body", "words"), BAD_EMBEDS)
async def test_bad_requests_are_googles_400s(
    ready: RunningGateway, key_header: Any, method: str, body: Any, words: str
) -> None:
    key = await ready.key()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{ready.url}/v1beta/models/m-openai:{method}", json=body, headers=key_header(key)
        ) as r,
    ):
        err = (await r.json())["error"]
    assert r.status == 400 and err["status"] == "INVALID_ARGUMENT", err
    assert words in err["message"]


async def test_image_parts_cannot_reach_openai_embeddings(
    ready: RunningGateway, key_header: Any
) -> None:
    key = await ready.key()
    body = {
        "requests": [
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}
        ]
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{ready.url}/v1beta/models/m-openai:batchEmbedContents",
            json=body,
            headers=key_header(key),
        ) as r,
    ):
        err = (await r.json())["error"]
    assert r.status == 400 and "only text" in err["message"]


ELSEWHERE = [
    ("POST", "/v1beta/models/m-gemini:predict"),
    ("POST", "/v1/models/m-gemini:streamGenerateContentX"),
    ("POST", "/v1/models/m-gemini:asyncBatchEmbedContent"),
    ("POST", "/v1beta/models/:countTokens"),
    ("GET", "/v1beta/tunedModels"),
    ("GET", "/v1beta/cachedContents"),
    ("DELETE", "/v1beta/models/m-gemini"),
    ("DELETE", "/v1/models/m-gemini"),
]


@pytest.mark.parametrize(("method", "path"), ELSEWHERE)
async def test_everything_else_answers_in_googles_envelope(
    ready: RunningGateway, key_header: Any, method: str, path: str
) -> None:
    key = await ready.key()
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, ready.url + path, json={"contents": []}, headers=key_header(key)) as r,
    ):
        body = await r.json()
    assert r.status in (404, 405), body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["status"] in ("NOT_FOUND", "FAILED_PRECONDITION")


async def test_listing_errors_in_the_clients_envelope(ready: RunningGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(ready.url + "/v1beta/models", headers={"x-goog-api-key": "no"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["status"] == "UNAUTHENTICATED"
        async with http.get(
            ready.url + "/v1/models", headers={"x-api-key": "no", "anthropic-version": "2023-06-01"}
        ) as r:
            assert r.status == 401
            assert (await r.json())["type"] == "error"
        key = await ready.key()
        for query in ("pageSize=0", "pageSize=abc", "pageToken=zz", "pageToken=99999"):
            async with http.get(
                ready.url + "/v1beta/models?" + query, headers={"x-goog-api-key": key}
            ) as r:
                err = (await r.json())["error"]
                assert r.status == 400 and err["status"] == "INVALID_ARGUMENT", query


async def test_anthropic_sdk_lists_and_retrieves(ready: RunningGateway) -> None:
    key = await ready.key()
    async with anthropic.AsyncAnthropic(base_url=ready.url, api_key=key, max_retries=0) as c:
        ids = [m.id async for m in c.models.list(limit=2)]  # the pager walks every page
        assert "m-anthropic" in ids and "anthropic/claude-opus-4-6" in ids
        assert len(ids) == len(set(ids)) > 2
        got = await c.models.retrieve("anthropic/claude-opus-4-6")
        assert got.display_name == "Claude Opus 4.6"
        assert got.created_at.year == 2026
        with pytest.raises(anthropic.NotFoundError):
            await c.models.retrieve("anthropic-nope")


async def test_openai_sdk_retrieves(ready: RunningGateway) -> None:
    import openai

    async with ready.openai(await ready.key()) as c:
        got = await c.models.retrieve("openai/gpt-4o-mini")
        assert got.owned_by == "openai" and got.created == 1721172741
        with pytest.raises(openai.NotFoundError):
            await c.models.retrieve("nope")
