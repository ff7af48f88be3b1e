"""Hostile input, generated: thousands of malformed requests against misbehaving upstreams.

A real ``aigw serve`` process sits between a raw HTTP client and three fake providers
(OpenAI, Anthropic, Gemini) that can be told to misbehave (tests/fakes/chaos.py).
Hypothesis generates request bodies and header sets for every POST endpoint, plain and
streamed, and for each one the test asserts:

- the gateway itself never answers 500 (``internal_error``); upstream failures it
  re-envelopes are fine;
- every request gets a complete HTTP reply (a cut chunked body raises in the client);
- no provider key appears in any response (body or header), and no request reached the
  provider host outside the provider's API paths.

The last test then checks the server still answers a normal request and that no provider
key appears in its log output or in any byte of the state file.

The examples are derandomized: the same inputs every run, so this cannot flake.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

from aigw.config import Config, ModelConfig, ProviderConfig
from aigw.store import open_database
from aigw.store.sqlite import keys as keystore
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import FakeUpstream
from tests.fakes.chaos import MODES, Chaos
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.serverproc import ServerProcess, start_server

pytestmark = pytest.mark.slow

T = TypeVar("T")

# Provider keys that do not look like keys: only exact-match redaction can catch them.
PROVIDER_KEYS = {
    "openai": "openai-canary-4e7d1b0c9a",
    "anthropic": "anthropic-canary-8f2a6c3d1e",
    "gemini": "gemini-canary-1b9e7f4a2d",
}
EXAMPLES_PER_ENDPOINT = 850  # x 6 endpoints: 5,100 generated requests
MODELS = ["m-openai", "m-anthropic", "m-gemini"]
HOSTILE_MODELS = [
    "gem1/../../steal?x=1#",
    "../../../v1/files",
    "m-gemini/../../x",
    "%2e%2e/%2e%2e/steal",
    "m-openai\r\nX-Evil: 1",
    "m-openai\x00",
    "m-\u202eopenai",
    "\u00fc\u00f1\u00ee",
    "m" * 3000,
    "models/../../x",
    "m-gemini:streamGenerateContent?key=x",
    "a\\..\\b",
    "",
    " ",
]


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    server: ServerProcess
    home: Path
    key: str
    chaos: list[Chaos]
    session: aiohttp.ClientSession

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    home = tmp_path_factory.mktemp("hostile")
    fakes: list[tuple[str, FakeUpstream]] = [
        ("openai", FakeOpenAI()),
        ("anthropic", FakeAnthropic()),
        ("gemini", FakeGemini()),
    ]
    chaos = [Chaos(fake, wire) for wire, fake in fakes]

    async def setup() -> tuple[ServerProcess, str, aiohttp.ClientSession]:
        for _, fake in fakes:
            await fake.start()
        cfg = Config()
        # The storm fails most calls on purpose: breakers that stayed open for the
        # default cooldown would refuse the calls after it (a probe goes at once here).
        cfg.routing.breaker_cooldown = 0.001
        urls = {
            "openai": fakes[0][1].base_url + "/v1",
            "anthropic": fakes[1][1].base_url,
            "gemini": fakes[2][1].base_url,
        }
        for name, url in urls.items():
            cfg.providers[name] = ProviderConfig(name, name, url)
        cfg.models["m-openai"] = ModelConfig("m-openai", "openai", "gpt-4o-mini")
        cfg.models["m-anthropic"] = ModelConfig("m-anthropic", "anthropic", "claude-sonnet-4-6")
        cfg.models["m-gemini"] = ModelConfig("m-gemini", "gemini", "gemini-2.5-flash")
        db = await open_database(home / "state.db")
        key, _ = await keystore.create(db, team="fuzz")
        await db.close()
        env_vars = {f"AIGW_{n.upper()}_API_KEY": k for n, k in PROVIDER_KEYS.items()}
        # Every log line, debug included (it quotes SQL parameters), must be key-free.
        server = await start_server(home, cfg, env_vars, log_level="debug")
        # One connection per request: a failure is the request's own, not an earlier one's.
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(force_close=True),
        )
        return server, key, session

    server, key, session = run(setup())
    yield Env(loop, server, home, key, chaos, session)

    async def teardown() -> None:
        await session.close()
        await server.stop()
        for _, fake in fakes:
            await fake.close()

    run(teardown())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


# -- generated requests ------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["user", "assistant", "system", "tool", "model", "text", "image_url"])
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def base_body(endpoint: str, model: str, stream: bool) -> dict[str, Any]:
    msgs = [{"role": "user", "content": "hi"}]
    if endpoint == "chat":
        return {"model": model, "messages": msgs, "stream": stream}
    if endpoint == "messages":
        return {"model": model, "max_tokens": 50, "messages": msgs, "stream": stream}
    if endpoint == "count_tokens":
        return {"model": model, "messages": msgs}
    if endpoint == "embeddings":
        return {"model": model, "input": ["hi", "there"]}
    if endpoint == "responses":
        return {"model": model, "input": "hi", "stream": stream}
    if endpoint == "gemini_embed":
        return {"requests": [{"content": {"parts": [{"text": "hi"}]}, "taskType": "CLUSTERING"}]}
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def containers(value: Any, out: list[Any]) -> list[Any]:
    """Every dict and list inside ``value`` (iteratively), ``value`` first."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            out.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            out.append(v)
            stack.extend(v)
    return out


def mutate(body: Any, ops: list[tuple[int, str, str, Any]]) -> Any:
    for where, op, name, value in ops:
        places = containers(body, [])
        if not places:
            return body
        target = places[where % len(places)]
        if isinstance(target, dict):
            keys = list(target)
            if op == "delete" and keys:
                del target[keys[where % len(keys)]]
            elif op == "set" and keys:
                target[keys[where % len(keys)]] = value
            else:
                target[name] = value
        elif op == "delete" and target:
            target.pop(where % len(target))
        elif op == "set" and target:
            target[where % len(target)] = value
        else:
            target.append(value)
    return body


def nest(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


@dataclass
class Case:
    path: str
    body: bytes
    headers: dict[str, str]
    mode: str
    status: int


@st.composite
def cases(draw: st.DrawFn, endpoint: str) -> Case:
    stream = draw(st.booleans())
    model = draw(st.sampled_from(MODELS) | st.sampled_from(HOSTILE_MODELS) | st.text(max_size=30))
    body: Any = base_body(endpoint, model, stream)
    shape = draw(st.sampled_from(["valid", "mutated", "mutated", "random", "deep", "bytes"]))
    if shape == "mutated":
        ops = st.tuples(
            st.integers(0, 1000),
            st.sampled_from(["set", "delete", "add"]),
            st.text(max_size=10),
            json_value,
        )
        body = mutate(body, draw(st.lists(ops, min_size=1, max_size=4)))
    elif shape == "random":
        body = draw(json_value)
    elif shape == "deep":
        depth = draw(st.sampled_from([40, 70, 130, 260, 600, 2000]))
        body = mutate(body, [(draw(st.integers(0, 50)), "set", "x", nest(depth))])
    raw = draw(st.binary(max_size=200)) if shape == "bytes" else _dumps(body)

    if endpoint == "chat":
        path = "/v1/chat/completions"
    elif endpoint == "messages":
        path = "/v1/messages"
    elif endpoint == "count_tokens":
        path = "/v1/messages/count_tokens"
    elif endpoint == "embeddings":
        path = "/v1/embeddings"
    elif endpoint == "responses":
        path = "/v1/responses"
    elif endpoint == "gemini_embed":
        method = draw(st.sampled_from(["batchEmbedContents", "embedContent"]))
        path = (
            f"/{draw(st.sampled_from(['v1beta', 'v1']))}/models/{quote(model, safe='/:')}:{method}"
        )
    else:
        method = draw(
            st.sampled_from(
                ["generateContent", "streamGenerateContent", "countTokens", "bogus", ""]
            )
        )
        version = draw(st.sampled_from(["v1beta", "v1", "v1alpha"]))
        path = f"/{version}/models/{quote(model, safe='/:')}:{method}"
        if method == "streamGenerateContent" and draw(st.booleans()):
            path += "?alt=sse"

    headers = {
        "Content-Type": draw(
            st.sampled_from(
                ["application/json", "text/plain", "", "application/json; charset=latin-1"]
            )
        )
    }
    auth = draw(
        st.sampled_from(
            [
                "bearer",
                "bearer",
                "x-api-key",
                "x-goog-api-key",
                "x-gateway-key",
                "query",
                "none",
                "bad",
                "nonascii",
            ]
        )
    )
    key = "VALID"
    if auth == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif auth in ("x-api-key", "x-goog-api-key"):
        headers[auth] = key
    elif auth == "x-gateway-key":
        headers["X-Gateway-Key"] = key
    elif auth == "query":
        path += ("&" if "?" in path else "?") + "key=VALID"
    elif auth == "bad":
        headers["Authorization"] = "Bearer gw-" + draw(
            st.text(max_size=40).filter(lambda s: s.isascii() and s.isprintable())
        )
    elif auth == "nonascii":
        headers["Authorization"] = "Bearer gw-\u00e9\u00e8\u4e2d"
    if endpoint in ("messages", "count_tokens"):
        headers["anthropic-version"] = "2023-06-01"
        if draw(st.booleans()):
            headers["anthropic-beta"] = draw(st.text(max_size=30).filter(lambda s: s.isprintable()))
    encoding = draw(
        st.sampled_from([None, None, None, "gzip", "gzip-lie", "deflate", "br", "bogus"])
    )
    if encoding == "gzip":
        raw, headers["Content-Encoding"] = gzip.compress(raw), "gzip"
    elif encoding == "gzip-lie":
        headers["Content-Encoding"] = "gzip"
    elif encoding is not None:
        headers["Content-Encoding"] = encoding
    mode = draw(st.sampled_from(MODES))
    status = draw(st.sampled_from([400, 401, 403, 404, 408, 429, 500, 502, 503, 529]))
    return Case(path, raw, headers, mode, status)


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):
        return b"{}"


# -- the properties ----------------------------------------------------------------


async def send(env: Env, case: Case) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v.replace("VALID", env.key) for k, v in case.headers.items()}
    url = env.server.url + case.path.replace("VALID", env.key)
    for c in env.chaos:
        c.mode, c.status = case.mode, case.status
    async with env.session.post(URL(url, encoded=True), data=case.body, headers=headers) as resp:
        body = await resp.read()  # raises ClientPayloadError if the reply was cut
        return resp.status, dict(resp.headers), body


def check_reply(status: int, headers: dict[str, str], body: bytes) -> None:
    text = body + repr(headers).encode()
    for name, secret in PROVIDER_KEYS.items():
        assert secret.encode() not in text, f"{name} provider key leaked: {text[:500]!r}"
    assert b"internal_error" not in body, body[:500]
    if headers.get("Content-Type", "").startswith("application/json"):
        orjson.loads(body)  # a JSON reply is whole JSON


ENDPOINTS = [
    "chat",
    "messages",
    "count_tokens",
    "generate",
    "gemini_embed",
    "embeddings",
    "responses",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(
    max_examples=EXAMPLES_PER_ENDPOINT,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # the reply names the failing case
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_hostile_requests(env: Env, endpoint: str, data: st.DataObject) -> None:
    case = data.draw(cases(endpoint))
    try:
        status, headers, body = env.run(send(env, case))
        check_reply(status, headers, body)
    except (AssertionError, aiohttp.ClientError) as exc:
        raise AssertionError(f"{case}: {exc!r}") from exc
    assert env.server.proc.returncode is None, "the server died"
    for c in env.chaos:
        assert not c.fake.strays, f"a request left the provider's API paths: {c.fake.strays}"


def test_after_the_storm(env: Env) -> None:
    """The server still answers, and no provider key reached its log or state file."""

    async def normal() -> tuple[int, bytes]:
        for c in env.chaos:
            c.mode = "ok"
        async with env.session.post(
            env.server.url + "/v1/chat/completions",
            json={"model": "m-openai", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {env.key}"},
        ) as resp:
            return resp.status, await resp.read()

    status, body = env.run(normal())
    assert status == 200, body
    log = "".join(env.server.output)
    assert " DEBUG " in log  # the whole log was checked, not just its warnings
    files = sorted(env.home.glob("state.db*"))
    assert files
    for name, secret in PROVIDER_KEYS.items():
        assert secret not in log, f"{name} provider key in the log"
        for f in files:
            assert secret.encode() not in f.read_bytes(), f"{name} provider key in {f.name}"
