"""The provider key goes to the provider's API and nowhere else; header values are safe.

Model names are validated where they enter and escaped where they become part of an
upstream URL; every upstream text (error bodies, their type/code/param, stream error
events, Retry-After, passed-through chunks) is redacted before it reaches a client, a
log record or the state file; every header value built from client or upstream text is
printable ASCII.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from yarl import URL

from aigw.config import Config
from aigw.model import Limits
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Fail, FakeUpstream, Inject
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]
KEYS = {
    "openai": "openai-upstream-key",
    "anthropic": "anthropic-upstream-key",
    "gemini": "gemini-upstream-key",
}
CLIENTS = ("openai", "anthropic", "gemini")


# -- helpers -------------------------------------------------------------------------


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(
    gw: RunningGateway, key: str, path: str, body: object, *, encoded: bool = False
) -> Answer:
    """POST ``body`` to ``path`` (raw, percent-escapes kept, when ``encoded``)."""
    url = URL(gw.url + path, encoded=True) if encoded else URL(gw.url + path)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url,
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ) as r,
    ):
        return Answer(r.status, r.headers, await r.read())


async def chat(gw: RunningGateway, key: str, client: str, model: str, stream: bool) -> Answer:
    """One chat call in ``client``'s wire format."""
    if client == "openai":
        body: dict[str, Any] = {"model": model, "messages": HI, "stream": stream}
        return await call(gw, key, "/v1/chat/completions", body)
    if client == "anthropic":
        body = {"model": model, "max_tokens": 50, "messages": HI, "stream": stream}
        return await call(gw, key, "/v1/messages", body)
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    return await call(gw, key, f"/v1beta/models/{model}:{method}", body)


def state_bytes(gw: RunningGateway) -> bytes:
    """Every byte of the state file and its WAL, as they are on disk now."""
    out = b""
    for suffix in ("", "-wal"):
        path = Path(str(gw.state_file) + suffix)
        if path.exists():
            out += path.read_bytes()
    return out


def assert_no_key(gw: RunningGateway, answer: Answer, caplog: pytest.LogCaptureFixture) -> None:
    for key in KEYS.values():
        assert key.encode() not in answer.body, answer.body
        for name, value in answer.headers.items():
            assert key not in name and key not in value, (name, value)
        assert key not in caplog.text
        assert key.encode() not in state_bytes(gw)


async def ledger_errors(gw: RunningGateway) -> list[str]:
    rows = await gw.fetchall("SELECT error FROM ledger ORDER BY id")
    return [r[0] for r in rows if r[0]]


def fake_for(provider: str, fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini]) -> FakeUpstream:
    return {"openai": fakes[0], "anthropic": fakes[1], "gemini": fakes[2]}[provider]


@pytest.fixture
def fakes(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> tuple[FakeOpenAI, FakeAnthropic, FakeGemini]:
    return fake_openai, fake_anthropic, fake_gemini


# -- model names: validated at entry ---------------------------------------------------

HOSTILE_MODELS = [
    "gemini/../../steal?x=1#",
    "gemini/gem1/../../steal?x=1#",
    "gemini/%2e%2e/%2e%2e/steal",
    "gemini/..\\..\\steal",
    "gemini/gem\u2024\u2024/steal",  # one-dot leaders
    "gemini/gémini",
    "gemini/ｇｅｍｉｎｉ",  # fullwidth
    "gemini/gem\x00x",
    "gemini/gem\r\nx-evil: 1",
    "gemini/gem\tx",
    "gemini/gem x",
    "gemini/./gemini-2.5-flash",
    "gemini//gemini-2.5-flash",
    "/gemini/gemini-2.5-flash",
    "gemini/gemini-2.5-flash/",
    "gemini/" + "a" * 300,
    "openai/../../v1/steal",
    "anthropic/x?y=1",
]


@pytest.mark.parametrize("model", HOSTILE_MODELS)
async def test_hostile_model_names_are_refused_before_any_upstream_call(
    trio: RunningGateway,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    model: str,
) -> None:
    # The key's glob matches every one of these names: validation must not depend on it.
    key = await trio.key(limits=Limits(models=("gemini/*", "openai/*", "anthropic/*", "/*")))
    answers = [
        await chat(trio, key, "openai", model, False),
        await chat(trio, key, "openai", model, True),
        await chat(trio, key, "anthropic", model, False),
        await call(trio, key, "/v1/embeddings", {"model": model, "input": "hi"}),
        await call(trio, key, "/v1/responses", {"model": model, "input": "hi"}),
        await call(trio, key, "/v1/messages/count_tokens", {"model": model, "messages": HI}),
    ]
    for answer in answers:
        assert answer.status == 400, answer.body
        err = answer.json()["error"]
        if "param" in err:  # the OpenAI envelope
            assert (err["code"], err["param"]) == ("invalid_model", "model")
        assert "Invalid model name" in err["message"]
    assert all(not f.requests and not f.strays for f in fakes)
    rows = await trio.fetchall("SELECT status FROM ledger")
    assert [r[0] for r in rows] == [400] * 5  # count_tokens is never in the ledger


GEMINI_PATHS = [
    "gemini%2F..%2F..%2Fsteal%3Fx=1%23",
    "gemini%2Fgem1%2F..%2F..%2Fsteal%3Fx%3D1%23",
    "gemini%2F%2e%2e%2F%2e%2e%2Fsteal",
    "gemini%2F%252e%252e%2Fsteal",
    "gemini%2F..%5C..%5Csteal",
    "gemini%2Fg%C3%A9mini",
    "gemini%2Fgem%00x",
    "gemini%2Fgem%0D%0Ax",
    "gemini%2F.%2Fgemini-2.5-flash",
    "gemini/../../steal",
    "gemini%2F..",
    "..",
    "%2e%2e",
]


@pytest.mark.parametrize("raw", GEMINI_PATHS)
@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent?alt=sse"])
async def test_hostile_model_in_the_gemini_url_path_never_reaches_another_path(
    trio: RunningGateway,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    raw: str,
    method: str,
) -> None:
    key = await trio.key(limits=Limits(models=("gemini/*", "*")))
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    answer = await call(trio, key, f"/v1beta/models/{raw}:{method}", body, encoded=True)
    # 404 when the path itself does not name a model (the router refuses it).
    assert answer.status in (400, 404), answer.body
    if answer.status == 400:
        err = answer.json()["error"]
        assert err["status"] == "INVALID_ARGUMENT" and "Invalid model name" in err["message"]
    assert all(not f.requests and not f.strays for f in fakes)


async def test_valid_names_with_slashes_and_colons_are_escaped_as_one_path_segment(
    start_gateway: StartGateway,
    fake_gemini: FakeGemini,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", KEYS["gemini"])
    gw = await start_gateway(
        providers={
            "gemini": ("gemini", fake_gemini.base_url),
            "openai": ("openai", fake_openai.base_url + "/v1"),
        },
        # An operator's (trusted) upstream name is escaped all the same.
        models={"odd": ("gemini", "../../steal?x=1#")},
    )
    key = await gw.key(limits=Limits(models=("gemini/*", "odd", "openai/*")))
    for model in ("gemini/a/b:c", "gemini/models/x/y", "odd"):
        assert (await chat(gw, key, "openai", model, False)).status == 200
    answer = await call(gw, key, "/v1/embeddings", {"model": "gemini/e/f", "input": "hi"})
    assert answer.status == 200
    paths = [r.raw_path for r in fake_gemini.requests]
    assert paths == [
        "/v1beta/models/a%2Fb:c:generateContent",
        "/v1beta/models/x%2Fy:generateContent",
        "/v1beta/models/..%2F..%2Fsteal%3Fx=1%23:generateContent",
        "/v1beta/models/e%2Ff:batchEmbedContents",
    ]
    # OpenAI-family names are in the body, never in the URL.
    answer = await chat(gw, key, "openai", "openai/meta-llama/Llama-3-70b", False)
    assert answer.status == 200
    assert fake_openai.last.raw_path == "/v1/chat/completions"
    assert fake_openai.last.body["model"] == "meta-llama/Llama-3-70b"
    assert not fake_gemini.strays and not fake_openai.strays


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "ft:gpt-4o-mini:org:custom:abc",
        "meta-llama/Llama-3-70b",
        "claude-sonnet-4-5@20250929",
        "gemini-2.0-flash",
        "llama3:8b",
        "a" * 256,
    ],
)
async def test_real_model_names_pass_validation(
    trio: RunningGateway, fake_openai: FakeOpenAI, model: str
) -> None:
    key = await trio.key()
    answer = await chat(trio, key, "openai", "openai/" + model[: 256 - 7], False)
    assert answer.status == 200, answer.body
    assert fake_openai.last.body["model"] == model[: 256 - 7]


async def test_a_model_allowed_by_glob_still_works(
    trio: RunningGateway, fake_gemini: FakeGemini
) -> None:
    key = await trio.key(limits=Limits(models=("gemini/*",)))
    for client in CLIENTS:
        answer = await chat(trio, key, client, "gemini/gemini-2.5-flash", False)
        assert answer.status == 200, answer.body
    assert [r.raw_path for r in fake_gemini.requests] == [
        "/v1beta/models/gemini-2.5-flash:generateContent"
    ] * 3


# -- the provider key: redacted from every upstream text --------------------------------


def error_body(provider: str) -> bytes:
    """An upstream error that echoes the provider's key in every field it has."""
    k = KEYS[provider]
    err: dict[str, Any]
    if provider == "openai":
        err = {"error": {"message": f"bad {k}", "type": k, "code": k, "param": k}}
    elif provider == "anthropic":
        err = {"type": "error", "error": {"type": k, "message": f"bad {k}"}}
    else:
        err = {"error": {"code": 503, "message": f"bad {k}", "status": k}}
    return orjson.dumps(err)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_key_echoed_in_an_upstream_error_response_is_redacted(
    trio: RunningGateway,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    caplog: pytest.LogCaptureFixture,
    provider: str,
    client: str,
    stream: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_for(provider, fakes).then(
        Fail(503, body=error_body(provider), headers={"Retry-After": KEYS[provider]})
    )
    key = await trio.key()
    answer = await chat(trio, key, client, f"m-{provider}", stream)
    assert answer.status == 503
    assert "Retry-After" not in answer.headers
    assert_no_key(trio, answer, caplog)
    assert "[redacted]" in str(answer.json())
    assert any("[redacted]" in e for e in await ledger_errors(trio))


def stream_error_event(provider: str) -> bytes:
    k = KEYS[provider]
    err: dict[str, Any]
    if provider == "openai":
        err = {"error": {"message": f"bad {k}", "type": k, "code": k, "param": k}}
        return b"data: " + orjson.dumps(err) + b"\n\n"
    if provider == "anthropic":
        err = {"type": "error", "error": {"type": k, "message": f"bad {k}"}}
        return b"event: error\ndata: " + orjson.dumps(err) + b"\n\n"
    err = {"error": {"code": 500, "message": f"bad {k}", "status": k}}
    return b"data: " + orjson.dumps(err) + b"\r\n\r\n"


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("shape", ["error-event", "malformed"])
async def test_key_echoed_mid_stream_is_redacted(
    trio: RunningGateway,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    caplog: pytest.LogCaptureFixture,
    provider: str,
    client: str,
    shape: str,
) -> None:
    """Native (same family) and translated streams, an error event or a chunk that is
    not JSON (passed through as it came)."""
    caplog.set_level(logging.DEBUG)
    k = KEYS[provider]
    raw = (
        stream_error_event(provider)
        if shape == "error-event"
        else b'data: {"error": "' + k.encode() + b'" \n\n'
    )
    # After the first content (Anthropic's fourth event is the first text delta) and
    # before the last: before any content, the gateway would answer with a plain
    # error (or fail over).
    fake_for(provider, fakes).then(Inject(raw, after=4 if provider == "anthropic" else 3))
    key = await trio.key()
    answer = await chat(trio, key, client, f"m-{provider}", True)
    assert answer.status == 200  # the headers went out before the error
    assert_no_key(trio, answer, caplog)
    rows = await trio.fetchall("SELECT status, error FROM ledger")
    assert len(rows) == 1 and rows[0][0] >= 500
    if shape == "error-event":
        assert b"[redacted]" in answer.body
        assert "[redacted]" in rows[0][1]


@pytest.mark.parametrize("shape", ["error-event", "malformed"])
async def test_key_echoed_in_a_responses_stream_is_redacted(
    trio: RunningGateway,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    shape: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    k = KEYS["openai"]
    event = {"type": "error", "code": k, "message": f"bad {k}", "param": k}
    raw = (
        b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
        if shape == "error-event"
        else b'event: x\ndata: {"error": "' + k.encode() + b'" \n\n'
    )
    fake_openai.then(Inject(raw, after=2))
    key = await trio.key()
    body = {"model": "m-openai", "input": "hi", "stream": True}
    answer = await call(trio, key, "/v1/responses", body)
    assert answer.status == 200
    assert_no_key(trio, answer, caplog)
    if shape == "error-event":
        assert b"[redacted]" in answer.body
        assert any("[redacted]" in e for e in await ledger_errors(trio))


async def test_key_echoed_in_a_responses_or_embeddings_error_is_redacted(
    trio: RunningGateway,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_openai, fake_anthropic, fake_gemini = fakes
    key = await trio.key()
    fake_openai.then(Fail(400, body=error_body("openai")), Fail(400, body=error_body("openai")))
    fake_gemini.then(Fail(503, body=error_body("gemini")))
    answers = [
        await call(trio, key, "/v1/responses", {"model": "m-openai", "input": "hi"}),
        await call(trio, key, "/v1/embeddings", {"model": "m-openai", "input": "hi"}),
        await call(trio, key, "/v1/embeddings", {"model": "gemini/e-1", "input": "hi"}),
    ]
    # OpenAI's own error type passes through (redacted); Gemini's status is mapped to
    # OpenAI's vocabulary, so no upstream text is left in the type at all.
    for answer, error_type in zip(
        answers, ["[redacted]", "[redacted]", "server_error"], strict=True
    ):
        assert answer.status in (400, 503)
        assert answer.json()["error"]["type"] == error_type
        assert_no_key(trio, answer, caplog)
    # count_tokens: the Anthropic count endpoint's own errors.
    fake_anthropic.then(Fail(400, body=error_body("anthropic")))
    answer = await call(
        trio, key, "/v1/messages/count_tokens", {"model": "m-anthropic", "messages": HI}
    )
    assert answer.status == 400
    assert_no_key(trio, answer, caplog)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("7", True),
        ("Wed, 21 Oct 2015 07:28:00 GMT", True),
        ("7.5", False),
        ("soon", False),
        ("-1", False),
        ("1" * 11, False),
    ],
)
async def test_upstream_retry_after_is_copied_only_when_well_formed(
    trio: RunningGateway, fake_openai: FakeOpenAI, value: str, kept: bool
) -> None:
    fake_openai.then(Fail(503, "busy", headers={"Retry-After": value}))
    key = await trio.key()
    answer = await chat(trio, key, "openai", "m-openai", False)
    assert answer.status == 503
    assert answer.headers.get("Retry-After") == (value if kept else None)


async def test_key_shaped_text_in_a_success_body_passed_through_is_redacted(
    trio: RunningGateway, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Even a provider that puts its key into an answer cannot hand it to a client."""
    from tests.fakes.base import Reply

    fake_openai.then(Reply(text="your key is " + KEYS["openai"]))
    key = await trio.key()
    for stream in (False, True):
        fake_openai.then(Reply(text="your key is " + KEYS["openai"]))
        answer = await chat(trio, key, "openai", "m-openai", stream)
        assert answer.status == 200
        assert_no_key(trio, answer, caplog)


# -- header values: safe by construction -----------------------------------------------

ODD_NAMES = [
    "p\x00x",
    "p\x01x",
    "p\x7fx",
    "p\tx",
    "p\r\nx-evil: 1",
    "p\u2028x",
    "pärameter",
    "p" + "\x0b" * 3000,
]


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_unknown_parameter_names_with_controls_make_a_safe_warning_header(
    start_gateway: StartGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    stream: bool,
) -> None:
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", KEYS["anthropic"])
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", KEYS["gemini"])
    cfg = Config()
    cfg.translation.strict = False
    gw = await start_gateway(
        providers={
            "anthropic": ("anthropic", fake_anthropic.base_url),
            "gemini": ("gemini", fake_gemini.base_url),
        },
        config=cfg,
    )
    key = await gw.key()
    body: dict[str, Any] = {"model": f"{provider}/m-1", "messages": HI, "stream": stream}
    body.update(dict.fromkeys(ODD_NAMES, 1))
    answer = await call(gw, key, "/v1/chat/completions", body)
    assert answer.status == 200
    warning = answer.headers["x-aigw-warning"]
    assert warning.isascii() and warning.isprintable() and len(warning) <= 2048
    assert "p\\x00x" in warning
    if stream:
        assert answer.body.endswith(b"data: [DONE]\n\n")
    else:
        assert answer.json()["choices"][0]["message"]["content"]
    rows = await gw.fetchall("SELECT status FROM ledger")
    assert [r[0] for r in rows] == [200]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_upstream_model_name_with_controls_makes_a_safe_header(
    start_gateway: StartGateway, fake_openai: FakeOpenAI, stream: bool
) -> None:
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")},
        models={"odd": ("openai", "gpt\x01odd\u00e9\r\nx-evil: 1")},
    )
    key = await gw.key()
    answer = await chat(gw, key, "openai", "odd", stream)
    assert answer.status == 200
    assert answer.headers["x-aigw-upstream-model"] == "gpt\\x01odd\\xe9\\r\\nx-evil: 1"
    assert "x-evil" not in answer.headers
    rows = await gw.fetchall("SELECT status FROM ledger")
    assert [r[0] for r in rows] == [200]


async def test_a_model_name_with_controls_is_a_complete_400_recorded_as_400(
    trio: RunningGateway,
) -> None:
    key = await trio.key()
    for client in ("openai", "anthropic"):
        answer = await chat(trio, key, client, "m-openai\r\nx-evil: 1\x00", True)
        assert answer.status == 400
        assert "x-evil" not in answer.headers
    rows = await trio.fetchall("SELECT status FROM ledger")
    assert [r[0] for r in rows] == [400, 400]


# -- the helpers themselves ----------------------------------------------------------


def test_segment_and_join_url_never_build_another_path() -> None:
    from aigw.errors import GatewayError
    from aigw.providers.base import join_url, segment
    from aigw.providers.gemini import model_path

    assert segment("a/b?c#d\\e:f") == "a%2Fb%3Fc%23d%5Ce%3Af"
    assert model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert model_path("models/x/../y") == "models/x%2F..%2Fy"
    assert model_path("tunedModels/t-1") == "tunedModels/t-1"
    for bad in ("", ".", ".."):
        with pytest.raises(GatewayError) as exc:
            segment(bad)
        assert exc.value.code == "invalid_model"
    for path in ("/v1/../x", "/v1/./x", "/v1/x?y", "/v1/x#y", "/v1/a\\b", "/v1/a b", "v1/x"):
        with pytest.raises(GatewayError):
            join_url("http://h", path)
    assert join_url("http://h/v1", "/v1/chat/completions", {"a": "b c"}) == (
        "http://h/v1/chat/completions?a=b+c"
    )


def test_an_upstream_fault_redacts_every_field() -> None:
    from aigw.providers.base import UpstreamFault

    k = "sekrit-provider-key"
    err = UpstreamFault(429, f"m {k}", type=k, code=k, param=k, retry_after=k).to_error(k)
    assert k not in repr(vars(err)) and err.headers == {}
    assert (err.type, err.code, err.param) == ("[redacted]",) * 3
    assert UpstreamFault(429, "m", retry_after=" 12 ").to_error(k).headers == {"Retry-After": "12"}


def test_header_value_is_printable_ascii_and_bounded() -> None:
    from aigw.headers import header_value

    assert header_value("gpt-4o") == "gpt-4o"
    assert header_value("a\x00b\r\nc\u00e9\u2028") == "a\\x00b\\r\\nc\\xe9\\u2028"
    long = header_value("\x01" * 5000)
    assert len(long) == 1024 and long.isascii() and long.isprintable()


def test_a_config_alias_that_is_not_a_valid_model_name_is_refused(tmp_path: Path) -> None:
    from aigw.config import load
    from aigw.errors import ConfigError

    path = tmp_path / "aigw.toml"
    path.write_text(
        '[providers.openai]\ntype = "openai"\n\n'
        '[models."fast model"]\nprovider = "openai"\nmodel = "gpt-4o"\n'
    )
    with pytest.raises(ConfigError, match="not a valid model name"):
        load(path)


def test_the_fast_model_name_check_agrees_with_the_rules() -> None:
    import random

    from aigw.formats.validate import _VALID_MODEL_NAME, model_problem

    rng = random.Random(7)
    names = ["a" * 256, "a" * 257, "gpt-4o", "ft:gpt-4o-mini:org:custom:abc"]
    names += ["".join(rng.choices("ab./:-@+_ \x00é", k=rng.randint(0, 8))) for _ in range(20_000)]
    for name in names:
        assert bool(_VALID_MODEL_NAME.fullmatch(name)) == (model_problem(name) is None), name
