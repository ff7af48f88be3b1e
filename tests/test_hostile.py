"""Hostile input: the gateway's own code never answers 500 and never drops a reply.

Wrong-typed values in every field of every client format, deeply nested JSON,
encoded or truncated bodies, non-ASCII auth headers, and failures after a stream's
headers went out.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types

from aigw.config import Config
from aigw.pipeline import relay
from aigw.pipeline.body import MAX_JSON_DEPTH, too_deep
from aigw.sse import Event, SSEParser
from tests.conftest import RunningGateway, StartGateway

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "2mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}

CHAT = {
    "model": "M",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": SCHEMA},
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "max_tokens": 50,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": ["zz"],
    "stream_options": {"include_usage": True},
    "user": "u",
    "seed": 1,
    "parallel_tool_calls": True,
    "metadata": {"k": "v"},
}
CHAT_JSON = {
    "model": "M",
    "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "hi"},
    ],
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
    "reasoning_effort": "low",
    "max_completion_tokens": 2000,
}
CHAT_MORE = {
    "model": "M",
    "messages": [
        {"role": "user", "content": "hi", "name": "ann"},
        {"role": "assistant", "content": "", "refusal": "no"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ],
    "functions": [{"name": "f", "parameters": SCHEMA}],
    "function_call": "auto",
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "modalities": ["text"],
    "service_tier": "auto",
    "prompt_cache_key": "k",
    "safety_identifier": "s",
    "store": False,
    "n": 1,
    "response_format": {"type": "json_object"},
}
# Gemini has no legacy functions.
CHAT_MORE_G = {k: v for k, v in CHAT_MORE.items() if k not in ("functions", "function_call")}
MESSAGES = {
    "model": "M",
    "max_tokens": 2000,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_1",
                    "content": [{"type": "text", "text": "42"}],
                }
            ],
        },
    ],
    "tools": [{"name": "f", "description": "d", "input_schema": SCHEMA}],
    "tool_choice": {"type": "auto"},
    "temperature": 0.5,
    "top_k": 5,
    "stop_sequences": ["zz"],
    "metadata": {"user_id": "u"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
}
MESSAGES_JSON = {
    "model": "M",
    "max_tokens": 100,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "hi"}],
    "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    "tool_choice": {"type": "tool", "name": "f"},
    "tools": [{"name": "f", "input_schema": SCHEMA}],
    "top_p": 0.9,
}
# What Claude Code sends to a non-Claude model name (tests/fixtures/claude_code/).
MESSAGES_AGENT = {
    "model": "M",
    "max_tokens": 32000,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "system", "content": "Mid-conversation context."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": 1}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_1",
                    "content": "42",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ],
    "tools": [{"name": "f", "description": "d", "input_schema": SCHEMA}],
    "thinking": {"type": "adaptive"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
}
COUNT = {
    "model": "M",
    "system": "Be brief.",
    "messages": MESSAGES["messages"],
    "tools": MESSAGES["tools"],
}
GEMINI = {
    "contents": [
        {
            "role": "user",
            "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "f", "response": {"r": 42}}}],
        },
    ],
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "tools": [{"functionDeclarations": [{"name": "f", "description": "d", "parameters": SCHEMA}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
    "generationConfig": {
        "maxOutputTokens": 50,
        "temperature": 0.5,
        "topP": 0.9,
        "topK": 5,
        "stopSequences": ["zz"],
        "candidateCount": 1,
        "thinkingConfig": {"thinkingBudget": 100},
    },
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}
GEMINI_JSON = {
    "contents": [{"parts": [{"text": "hi"}]}],
    "generationConfig": {"responseMimeType": "application/json", "responseSchema": SCHEMA},
}
GEMINI_COUNT = {
    "generateContentRequest": {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": SCHEMA}]}],
    }
}
GEMINI_EMBED = {
    "requests": [
        {"content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY", "title": "t"},
        {"content": {"parts": [{"text": "b"}, {"text": "c"}]}, "outputDimensionality": 8},
    ]
}
GEMINI_EMBED_ONE = {"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 8}
EMBEDDINGS = {"model": "M", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8}
EMBED_TOKENS = {"model": "M", "input": [[1, 2, 3], [4]], "user": "u"}
RESPONSES = {
    "model": "M",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
    "instructions": "Be brief.",
    "tools": [{"type": "function", "name": "f", "parameters": SCHEMA}],
    "max_output_tokens": 50,
    "temperature": 0.5,
}
# A Responses tool round trip with the settings the translation reads (anthropic and
# gemini targets go through the hub).
RESPONSES_ITEMS = {
    "model": "M",
    "input": [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ],
    "tools": [{"type": "function", "name": "f", "parameters": SCHEMA}, {"type": "web_search"}],
    "tool_choice": {"type": "function", "name": "f"},
    "text": {"format": {"type": "json_schema", "name": "x", "schema": SCHEMA}},
    "reasoning": {"effort": "low"},
    "parallel_tool_calls": False,
}

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

HUGE = "x" * 50_000
WRONG: list[Any] = [{}, [], 7, 2**63 - 1, None, True, "", HUGE]
DELETE = object()


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # URL path; {model} is replaced with the target's model name
    base: dict[str, Any]
    targets: tuple[str, ...]
    envelope: str  # openai | anthropic | google


ALL = ("openai", "anthropic", "gemini")
OTHER = {name: tuple(t for t in ALL if t != name) for name in ALL}  # translated targets
CASES = [
    Case("chat", "/v1/chat/completions", CHAT, ALL, "openai"),
    Case("chat-json", "/v1/chat/completions", CHAT_JSON, ("anthropic", "gemini"), "openai"),
    Case("chat-more", "/v1/chat/completions", CHAT_MORE, ("anthropic",), "openai"),
    Case("chat-more-g", "/v1/chat/completions", CHAT_MORE_G, ("gemini",), "openai"),
    Case("messages", "/v1/messages", MESSAGES, ("openai", "anthropic", "gemini"), "anthropic"),
    Case("messages-json", "/v1/messages", MESSAGES_JSON, ("openai", "gemini"), "anthropic"),
    Case("messages-agent", "/v1/messages", MESSAGES_AGENT, ("openai", "gemini"), "anthropic"),
    Case("count", "/v1/messages/count_tokens", COUNT, ("openai", "anthropic"), "anthropic"),
    Case(
        "generate",
        "/v1beta/models/{model}:generateContent",
        GEMINI,
        ("openai", "anthropic", "gemini"),
        "google",
    ),
    Case(
        "generate-json",
        "/v1beta/models/{model}:generateContent",
        GEMINI_JSON,
        ("openai", "anthropic"),
        "google",
    ),
    Case("count-g", "/v1beta/models/{model}:countTokens", GEMINI_COUNT, ALL, "google"),
    Case(
        "embed-g",
        "/v1beta/models/{model}:batchEmbedContents",
        GEMINI_EMBED,
        ("openai", "gemini"),
        "google",
    ),
    Case(
        "embed-one-g",
        "/v1/models/{model}:embedContent",
        GEMINI_EMBED_ONE,
        ("openai", "gemini"),
        "google",
    ),
    Case("embeddings", "/v1/embeddings", EMBEDDINGS, ("openai", "gemini"), "openai"),
    Case("embed-tokens", "/v1/embeddings", EMBED_TOKENS, ("openai",), "openai"),
    Case("responses", "/v1/responses", RESPONSES, ALL, "openai"),
    Case("responses-items", "/v1/responses", RESPONSES_ITEMS, ("anthropic", "gemini"), "openai"),
    # Streamed, to translated targets: the same request translation, then the stream
    # translators (native streams pass through as the unstreamed cases above do).
    Case(
        "chat-stream", "/v1/chat/completions", {**CHAT, "stream": True}, OTHER["openai"], "openai"
    ),
    Case(
        "messages-stream",
        "/v1/messages",
        {**MESSAGES, "stream": True},
        OTHER["anthropic"],
        "anthropic",
    ),
    Case(
        "generate-stream",
        "/v1beta/models/{model}:streamGenerateContent?alt=sse",
        GEMINI,
        OTHER["gemini"],
        "google",
    ),
    Case("responses-stream", "/v1/responses", {**RESPONSES, "stream": True}, ALL, "openai"),
]


def mutations(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(where, body-builder) for every position in ``node``: each value replaced by
    each wrong-typed value, each key deleted, each wrong value appended to each array."""
    if not path:
        for bad in WRONG:  # the whole body
            yield _label(("(body)",), bad), lambda base, bad=bad: bad
    if isinstance(node, dict):
        for k, v in node.items():
            yield _label((*path, k), DELETE), _set((*path, k), DELETE)
            for bad in WRONG:
                yield _label((*path, k), bad), _set((*path, k), bad)
            yield from mutations(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            for bad in WRONG:
                yield _label((*path, i), bad), _set((*path, i), bad)
            yield from mutations(v, (*path, i))
        for bad in WRONG:
            yield _label((*path, len(node)), bad), _set((*path, len(node)), bad)


def _label(path: tuple[str | int, ...], bad: Any) -> str:
    shown = {id(HUGE): "HUGE", id(DELETE): "(deleted)"}.get(id(bad)) or orjson.dumps(bad).decode()
    return ".".join(map(str, path)) + "=" + shown


def _set(path: tuple[str | int, ...], bad: Any) -> Any:
    def build(base: Any) -> Any:
        body = orjson.loads(orjson.dumps(base))
        node = body
        for step in path[:-1]:
            node = node[step]
        last = path[-1]
        if bad is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(bad)
        else:
            node[last] = bad
        return body

    return build


TARGET_MODEL = {"openai": "m-openai", "anthropic": "m-anthropic", "gemini": "m-gemini"}


def check_envelope(kind: str, status: int, body: Any) -> None:
    assert isinstance(body, dict), body
    if kind == "openai":
        err = body["error"]
        assert set(err) == {"message", "type", "param", "code"}
    elif kind == "anthropic":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
        err = body["error"]
    else:
        err = body["error"]
        assert err["code"] == status and isinstance(err["status"], str)
    assert isinstance(err["message"], str) and err["message"]
    # An echoed value never blows up the error message.
    assert len(err["message"]) <= 1024, err["message"][:200]


async def send(
    http: aiohttp.ClientSession, gw: RunningGateway, key: str, case: Case, target: str, body: Any
) -> tuple[int, bytes]:
    model = TARGET_MODEL[target]
    path = case.path.format(model=model)
    if isinstance(body, dict) and "model" in case.base and body.get("model") == "M":
        body["model"] = model
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with http.post(gw.url + path, data=orjson.dumps(body), headers=headers) as r:
        return r.status, await r.read()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_wrong_types_in_every_field_never_500(trio: RunningGateway, case: Case) -> None:
    key = await trio.key()
    failures: list[str] = []
    async with aiohttp.ClientSession() as http:
        for target in case.targets:
            status, raw = await send(http, trio, key, case, target, dict(case.base))
            assert status == 200, (target, raw[:500])
        jobs = [
            (where, target, build)
            for where, build in mutations(case.base)
            for target in case.targets
        ]
        sem = asyncio.Semaphore(8)

        async def one(where: str, target: str, build: Any) -> None:
            async with sem:
                status, raw = await send(http, trio, key, case, target, build(case.base))
            if status >= 500 or b"Internal gateway error" in raw:
                failures.append(f"{target} {where}: {status} {raw[:300]!r}")
            elif status >= 400:
                try:
                    check_envelope(case.envelope, status, orjson.loads(raw))
                except (AssertionError, KeyError, TypeError, ValueError) as exc:
                    failures.append(f"{target} {where}: bad envelope {exc!r} {raw[:300]!r}")

        await asyncio.gather(*(one(*job) for job in jobs))
    assert not failures, f"{len(failures)} of {len(jobs)}:\n" + "\n".join(failures[:60])


# -- nesting ---------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    """A JSON value ``depth`` levels deep: arrays around an object."""
    return b"[" * (depth - 1) + b"{}" + b"]" * (depth - 1)


DEEP_CASES = [
    ("/v1/chat/completions", "m-openai", "openai"),
    ("/v1/chat/completions", "m-anthropic", "openai"),
    ("/v1/messages", "m-gemini", "anthropic"),
    ("/v1beta/models/m-anthropic:generateContent", None, "google"),
    ("/v1/messages/count_tokens", "m-openai", "anthropic"),
    ("/v1beta/models/m-anthropic:countTokens", None, "google"),
    ("/v1beta/models/m-openai:batchEmbedContents", None, "google"),
    ("/v1/embeddings", "m-openai", "openai"),
    ("/v1/responses", "m-openai", "openai"),
    ("/v1/responses", "m-anthropic", "openai"),
]


def deep_body(path: str, model: str | None, inner: bytes) -> bytes:
    """A valid request for ``path`` with ``inner`` as a message's extra field."""
    head = b'{"model": "' + (model or "").encode() + b'", '
    if "generateContent" in path or "countTokens" in path:
        return b'{"contents": [{"parts": [{"text": "hi"}], "x": ' + inner + b"}]}"
    if "EmbedContents" in path:
        return b'{"requests": [{"content": {"parts": [{"text": "hi"}]}, "x": ' + inner + b"}]}"
    if "embeddings" in path:
        return head + b'"input": "hi", "x": ' + inner + b"}"
    if "responses" in path:
        return head + b'"input": [{"role": "user", "content": "hi", "x": ' + inner + b"}]}"
    return (
        head
        + b'"max_tokens": 20, "messages": [{"role": "user", "content": "hi", "x": '
        + inner
        + b"}]}"
    )


@pytest.mark.parametrize(("path", "model", "kind"), DEEP_CASES)
async def test_deep_nesting_is_a_400_at_any_depth(
    trio: RunningGateway, path: str, model: str | None, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = await trio.key()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        # The body adds levels around ``inner``: every one of these is over the limit.
        for depth in (MAX_JSON_DEPTH + 1, 100, 254, 300, 500, 1100, 5000):
            data = deep_body(path, model, nested(depth))
            async with http.post(trio.url + path, data=data, headers=headers) as r:
                status, body = r.status, await r.json()
            assert status == 400, (depth, body)
            check_envelope(kind, 400, body)
            assert "more than 64 levels" in str(body), body
            if kind == "openai":
                assert body["error"]["code"] == "json_too_deep"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("target", ["m-openai", "m-anthropic", "m-gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_nesting_at_the_limit_passes_every_later_stage(
    trio: RunningGateway, target: str, stream: bool
) -> None:
    """64 levels, deepest inside a tool schema and a tool result: translated,
    estimated, re-encoded, forwarded."""
    key = await trio.key()
    inner = nested(MAX_JSON_DEPTH - 5)  # body > tools > [0] > function > parameters > x
    tool = b'{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "x": '
    data = (
        b'{"model": "'
        + target.encode()
        + b'", "stream": '
        + (b"true" if stream else b"false")
        + b', "messages": [{"role": "user", "content": "hi"}], "tools": ['
        + tool
        + inner
        + b"}}}]}"
    )
    assert not too_deep(orjson.loads(data)) and too_deep(orjson.loads(data), MAX_JSON_DEPTH - 1)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(trio.url + "/v1/chat/completions", data=data, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        await r.read()


# -- Content-Encoding and hang-ups ------------------------------------------------------

CHAT_BODY = orjson.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
MESSAGES_BODY = orjson.dumps(
    {"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "data", "status", "code"),
    [
        ("gzip", gzip.compress(CHAT_BODY), 200, None),
        ("x-gzip", gzip.compress(CHAT_BODY), 200, None),
        ("gzip", gzip.compress(CHAT_BODY[:30]) + gzip.compress(CHAT_BODY[30:]), 200, None),
        ("deflate", zlib.compress(CHAT_BODY), 200, None),
        ("deflate", raw_deflate(CHAT_BODY), 200, None),
        ("identity", CHAT_BODY, 200, None),
        ("GZIP", gzip.compress(CHAT_BODY), 200, None),
        ("gzip", CHAT_BODY, 400, "invalid_content_encoding"),
        ("deflate", CHAT_BODY, 400, "invalid_content_encoding"),
        ("gzip", gzip.compress(CHAT_BODY)[:-12], 400, "invalid_content_encoding"),
        ("br", CHAT_BODY, 415, "unsupported_content_encoding"),
        ("zstd", CHAT_BODY, 415, "unsupported_content_encoding"),
        ("garbage", CHAT_BODY, 415, "unsupported_content_encoding"),
        (
            "gzip, gzip",
            gzip.compress(gzip.compress(CHAT_BODY)),
            415,
            "unsupported_content_encoding",
        ),
    ],
)
async def test_content_encoding_is_decoded_or_refused_in_the_envelope(
    gateway: RunningGateway,
    encoding: str,
    data: bytes,
    status: int,
    code: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await gateway.key()
    headers = {"Authorization": f"Bearer {key}", "Content-Encoding": encoding}
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", data=data, headers=headers) as r:
            assert r.status == status, await r.text()
            body = await r.json()
        if code is not None:
            assert body["error"]["code"] == code
        # The same connection serves the next request.
        async with http.post(
            gateway.url + "/v1/chat/completions", data=CHAT_BODY, headers={"x-api-key": key}
        ) as r:
            assert r.status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_bad_encoding_uses_the_anthropic_envelope(gateway: RunningGateway) -> None:
    key = await gateway.key()
    headers = {"x-api-key": key, "Content-Encoding": "gzip"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gateway.url + "/v1/messages", data=MESSAGES_BODY, headers=headers) as r,
    ):
        assert r.status == 400
        body = await r.json()
    check_envelope("anthropic", 400, body)
    assert "gzip" in body["error"]["message"]


async def test_zip_bomb_is_413_on_its_decoded_size(start_gateway: StartGateway) -> None:
    cfg = Config()
    cfg.server.max_request_mb = 0.01  # 10 KiB
    gw = await start_gateway(providers={"mock": ("mock", "")}, config=cfg)
    key = await gw.key()
    # 1 KiB on the wire, 64 MiB decoded.
    bomb = b'{"model": "mock/echo", "messages": [{"role": "user", "content": "'
    bomb = gzip.compress(bomb + b" " * (64 << 20))
    assert len(bomb) < 100_000
    headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + "/v1/chat/completions", data=bomb[:10_000], headers=headers) as r,
    ):
        assert r.status == 413
        assert "decompressed" in (await r.json())["error"]["message"]
    # Just under the limit decodes fine.
    fits = CHAT_BODY[:-3] + b" " * 9000 + CHAT_BODY[-3:]
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + "/v1/chat/completions", data=gzip.compress(fits), headers=headers) as r,
    ):
        assert r.status == 200, await r.text()


async def raw_http(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a hand-made HTTP/1.1 request (any bytes in the headers); the whole reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            head.rstrip(b"\r\n")
            + b"\r\nHost: gw\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


async def test_client_hanging_up_mid_upload_is_a_quiet_499(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    key = await gateway.key()
    _reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
        + key.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        + CHAT_BODY[:20]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    rows: list[Any] = []
    for _ in range(200):  # the row appears once the gateway notices the hang-up
        rows = await gateway.fetchall("SELECT status, error FROM ledger")
        if rows:
            break
        await asyncio.sleep(0.01)
    assert [tuple(r) for r in rows] == [
        (499, "The client closed the connection before sending the whole request.")
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- auth headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer gw-\xff\xfe",
        b"Authorization: Bearer gw-\xc3\xa9",
        b"x-api-key: \xff",
        b"x-goog-api-key: gw-\x80abc",
        b"X-Gateway-Key: \xfe\xff",
        b"Authorization: Bearer " + b"a" * 5000,
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        (b"GET", b"/v1/models", "openai"),
        (b"POST", b"/v1/chat/completions", "openai"),
        (b"POST", b"/v1/messages", "anthropic"),
        (b"POST", b"/v1/messages/count_tokens", "anthropic"),
        (b"POST", b"/v1beta/models/mock%2Fecho:generateContent", "google"),
        (b"POST", b"/v1beta/models/mock%2Fecho:countTokens", "google"),
        (b"GET", b"/v1beta/models", "google"),
        (b"GET", b"/v1beta/models/mock%2Fecho", "google"),
    ],
)
async def test_non_ascii_or_oversized_keys_are_a_quiet_401(
    gateway: RunningGateway,
    header: bytes,
    method: bytes,
    path: bytes,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b"" if method == b"GET" else CHAT_BODY
    if path == b"/v1/models" and header.lower().startswith(b"x-goog-api-key"):
        kind = "google"  # google-genai's key header: a Gemini client's listing
    reply = await raw_http(gateway.port, method + b" " + path + b" HTTP/1.1\r\n" + header, body)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), reply[:300]
    body_json = orjson.loads(payload)
    check_envelope(kind, 401, body_json)
    assert "Invalid gateway key" in str(body_json)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("query", ["key=%FF%FE", "key=%C3%A9", "key=%00", "key=" + "a" * 3000])
async def test_odd_query_keys_are_a_401(gateway: RunningGateway, query: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(gateway.url + "/v1/models?" + query) as r,
    ):
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "invalid_api_key"


async def test_x_gateway_key_header_is_accepted_and_wins(gateway: RunningGateway) -> None:
    key = await gateway.key()
    async with gateway.openai("sk-provider-key-the-app-still-has") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    async with gateway.openai(
        "sk-provider-key-the-app-still-has", default_headers={"X-Gateway-Key": key}
    ) as client:
        await client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "hi"}]
        )
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/v1/models") as r:
            msg = (await r.json())["error"]["message"]
        assert "X-Gateway-Key" in msg
        async with http.get(gateway.url + "/v1/models", headers={"X-Gateway-Key": key}) as r:
            assert r.status == 200


# -- failures after a stream's headers went out -----------------------------------------


class ExplodingParser(SSEParser):
    """Parses the first upstream chunk, then fails as a gateway bug would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def feed(self, chunk: bytes) -> list[Event]:
        self.explode()
        return super().feed(chunk)

    def flush(self) -> list[Event]:
        self.explode()
        return super().flush()

    def explode(self) -> None:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("injected failure after the headers went out")


@pytest.fixture
def exploding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "SSEParser", ExplodingParser)


async def stream_row(gw: RunningGateway, rid: str) -> Any:
    rows = await gw.gw.store.reports.by_request_id(rid)
    assert len(rows) == 1
    row = rows[0]
    assert row.status == 500 and row.usage_estimated and "mid-stream" in (row.error or "")
    return row


STREAMS = [
    # path, model, body extras, how the stream's error event looks
    ("/v1/chat/completions", "m-openai", b'data: {"error":'),
    ("/v1/chat/completions", "m-anthropic", b'data: {"error":'),
    ("/v1/messages", "m-anthropic", b'event: error\ndata: {"type":"error"'),
    ("/v1/messages", "m-gemini", b'event: error\ndata: {"type":"error"'),
    ("/v1beta/models/m-gemini:streamGenerateContent?alt=sse", None, b'data: {"error":'),
    ("/v1beta/models/m-openai:streamGenerateContent?alt=sse", None, b'data: {"error":'),
    ("/v1/responses", "m-openai", b'event: error\ndata: {"type":"error"'),
    ("/v1/responses", "m-gemini", b'event: error\ndata: {"type":"error"'),
]


@pytest.mark.parametrize(("path", "model", "marker"), STREAMS)
async def test_failure_after_headers_ends_the_stream_with_an_error_event(
    trio: RunningGateway,
    exploding: None,
    path: str,
    model: str | None,
    marker: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await trio.key()
    msgs = [{"role": "user", "content": "hi"}]
    body: dict[str, Any]
    if path.startswith("/v1beta/"):
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
    elif "responses" in path:
        body = {"model": model, "input": "hi", "stream": True}
    else:
        body = {"model": model, "messages": msgs, "max_tokens": 50, "stream": True}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.post(trio.url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status == 200, await r.text()
        raw = await r.read()  # a clean end: no payload error from a broken chunked body
        rid = r.headers["x-request-id"]
    events = raw.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n\n")
    assert events[-1].startswith(marker), raw
    assert rid in events[-1].decode() and b"Internal gateway error mid-stream" in events[-1]
    assert raw.count(b"HTTP/1.1") == 0  # no second response inside the body
    await stream_row(trio, rid)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and rid in errors[0].getMessage()


async def test_failure_after_headers_reaches_the_sdks_as_errors(
    trio: RunningGateway, exploding: None
) -> None:
    key = await trio.key()
    msgs: Any = [{"role": "user", "content": "hi"}]
    async with trio.openai(key, timeout=10) as oai:
        stream = await oai.chat.completions.create(model="m-anthropic", messages=msgs, stream=True)
        with pytest.raises(openai.APIError, match="Internal gateway error mid-stream"):
            async for _ in stream:
                pass
        events = []
        async for ev in await oai.responses.create(model="m-openai", input="hi", stream=True):
            events.append(ev.type)
        assert events[-1] == "error"
    async with anthropic.AsyncAnthropic(base_url=trio.url, api_key=key, max_retries=0) as ant:
        with pytest.raises(anthropic.APIStatusError, match="Internal gateway error mid-stream"):
            async with ant.messages.stream(model="m-gemini", max_tokens=50, messages=msgs) as s:
                async for _ in s:
                    pass
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=trio.url))
    try:
        with pytest.raises(gerrors.APIError, match="Internal gateway error mid-stream"):
            async for _ in await client.aio.models.generate_content_stream(
                model="m-openai", contents="hi"
            ):
                pass
    finally:
        await client.aio.aclose()
    # The gateway answers normally afterwards, and every call has its row.
    rows = await trio.fetchall("SELECT status FROM ledger")
    assert [r[0] for r in rows] == [500] * 4


async def test_malformed_headers_log_one_short_line(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    secret = b"gw-secret\x01\x02"
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    for _ in range(3):
        reply = await raw_http(
            gateway.port, b"GET /v1/models HTTP/1.1\r\nAuthorization: Bearer " + secret
        )
        assert reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), reply[:200]
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 3
    for r in lines:
        assert r.levelno == logging.INFO and not r.exc_info and not r.exc_text
        assert "gw-secret" not in caplog.text
