"""Scrubbing end to end: the official SDKs through the real gateway to the fake providers.

The fakes record every request: the provider must never see the values. They stream
answers in small pieces (3 characters; Gemini 8), so a placeholder in the answer
always arrives split across events, and the client must read the values back, in
every client wire format, plain and streamed, whichever provider answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import types
from typer.testing import CliRunner

from aigw import paths
from aigw.app import create_app
from aigw.cli import app as cli_app
from aigw.config import Config, ModelConfig
from aigw.model import Limits
from tests.conftest import RunningGateway, StartGateway, listening, provider_config, until
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import FakeUpstream, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

EMAIL = "alice.smith@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415-555-2671"
PROMPT = f"Write to {EMAIL} about card {CARD}."
SYSTEM = f"The customer's phone is {PHONE}."
ANSWER = "Done: I wrote to [EMAIL_1] about [CARD_1], phone [PHONE_1]."
RESTORED = f"Done: I wrote to {EMAIL} about {CARD}, phone {PHONE}."
VALUES = (EMAIL, CARD, PHONE, "4111111111111111")

MODELS = {
    "m-openai": ("openai", "gpt-4o-mini"),
    "m-anthropic": ("anthropic", "claude-sonnet-4-6"),
    "m-gemini": ("gemini", "gemini-2.5-flash"),
}


def scrub_config() -> Config:
    cfg = Config()
    cfg.routing.max_attempts = 1
    cfg.scrub.actions.update(email="redact", phone="redact")
    return cfg


@pytest.fixture
async def gw(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    _provider_keys(monkeypatch)
    for fake in (fake_openai, fake_anthropic, fake_gemini):
        fake.default = Reply(text=ANSWER)
    return await start_gateway(
        providers=_providers(fake_openai, fake_anthropic, fake_gemini),
        models=MODELS,
        config=scrub_config(),
    )


def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "openai-upstream-key")
    monkeypatch.setenv("AIGW_ANTHROPIC_API_KEY", "anthropic-upstream-key")
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")


def _providers(o: FakeOpenAI, a: FakeAnthropic, g: FakeGemini) -> dict[str, tuple[str, str]]:
    return {
        "openai": ("openai", o.base_url + "/v1"),
        "anthropic": ("anthropic", a.base_url),
        "gemini": ("gemini", g.base_url),
    }


def seen(*fakes: FakeUpstream) -> str:
    """Everything the providers received, as text."""
    return "".join(orjson.dumps(r.body).decode() for f in fakes for r in f.requests)


def assert_never_seen(*fakes: FakeUpstream) -> None:
    text = seen(*fakes)
    assert text, "no request reached a provider"
    for value in VALUES:
        assert value not in text
    assert "[EMAIL_1]" in text and "[CARD_1]" in text and "[PHONE_1]" in text


# -- one call per client format --------------------------------------------------------

Ask = Callable[[RunningGateway, str, str, bool], Awaitable[str]]


async def ask_chat(gw: RunningGateway, key: str, model: str, stream: bool) -> str:
    async with gw.openai(key) as client:
        messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
        if not stream:
            resp = await client.chat.completions.create(model=model, messages=messages)
            return resp.choices[0].message.content or ""
        out = ""
        async for chunk in await client.chat.completions.create(
            model=model, messages=messages, stream=True
        ):
            for choice in chunk.choices:
                out += choice.delta.content or ""
        return out


async def ask_responses(gw: RunningGateway, key: str, model: str, stream: bool) -> str:
    async with gw.openai(key) as client:
        if not stream:
            resp = await client.responses.create(model=model, instructions=SYSTEM, input=PROMPT)
            return resp.output_text
        deltas, final = "", ""
        async for event in await client.responses.create(
            model=model, instructions=SYSTEM, input=PROMPT, stream=True
        ):
            if event.type == "response.output_text.delta":
                deltas += event.delta
            elif event.type == "response.completed":
                final = event.response.output_text
        assert final == deltas
        return deltas


async def ask_anthropic(gw: RunningGateway, key: str, model: str, stream: bool) -> str:
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
        messages: Any = [{"role": "user", "content": PROMPT}]
        if not stream:
            msg = await client.messages.create(
                model=model, max_tokens=100, system=SYSTEM, messages=messages
            )
            return "".join(b.text for b in msg.content if b.type == "text")
        async with client.messages.stream(
            model=model, max_tokens=100, system=SYSTEM, messages=messages
        ) as s:
            text = "".join([t async for t in s.text_stream])
            final = await s.get_final_message()
        assert "".join(b.text for b in final.content if b.type == "text") == text
        return text


def genai_client(gw: RunningGateway, key: str) -> genai.client.AsyncClient:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    ).aio


async def ask_gemini(gw: RunningGateway, key: str, model: str, stream: bool) -> str:
    client = genai_client(gw, key)
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    try:
        if not stream:
            resp = await client.models.generate_content(model=model, contents=PROMPT, config=config)
            return resp.text or ""
        out = ""
        async for chunk in await client.models.generate_content_stream(
            model=model, contents=PROMPT, config=config
        ):
            out += chunk.text or ""
        return out
    finally:
        await client.aclose()


CLIENTS: dict[str, Ask] = {
    "chat": ask_chat,
    "responses": ask_responses,
    "anthropic": ask_anthropic,
    "gemini": ask_gemini,
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("client", list(CLIENTS))
async def test_provider_never_sees_values_and_client_reads_them_back(
    gw: RunningGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    client: str,
    model: str,
    stream: bool,
) -> None:
    answer = await CLIENTS[client](gw, await gw.key(), model, stream)
    assert answer == RESTORED
    assert_never_seen(fake_openai, fake_anthropic, fake_gemini)


async def test_restore_off_leaves_placeholders(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _provider_keys(monkeypatch)
    cfg = scrub_config()
    cfg.scrub.restore = False
    fake_openai.default = Reply(text=ANSWER)
    gw = await start_gateway(
        providers=_providers(fake_openai, fake_anthropic, fake_gemini), models=MODELS, config=cfg
    )
    key = await gw.key()
    assert await ask_chat(gw, key, "m-openai", False) == ANSWER
    assert await ask_chat(gw, key, "m-openai", True) == ANSWER
    assert_never_seen(fake_openai)


# -- tools -----------------------------------------------------------------------------

TOOL_HISTORY: Any = [
    {"role": "user", "content": "Mail the customer."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": orjson.dumps({"q": EMAIL}).decode()},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": f"card {CARD}, phone {PHONE}"},
]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "send",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
async def test_tool_arguments_and_results(
    gw: RunningGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
    stream: bool,
) -> None:
    reply = Reply(text="", tool_calls=[("send", {"to": "[EMAIL_1]", "note": "[CARD_1]"})])
    for fake in (fake_openai, fake_anthropic, fake_gemini):
        fake.default = reply
    async with gw.openai(await gw.key()) as client:
        if not stream:
            resp = await client.chat.completions.create(
                model=model, messages=TOOL_HISTORY, tools=TOOLS
            )
            calls = resp.choices[0].message.tool_calls or []
            args = calls[0].function.arguments  # type: ignore[union-attr]
        else:
            args = ""
            async for chunk in await client.chat.completions.create(
                model=model, messages=TOOL_HISTORY, tools=TOOLS, stream=True
            ):
                for choice in chunk.choices:
                    for call in choice.delta.tool_calls or ():
                        args += (call.function.arguments if call.function else None) or ""
    assert orjson.loads(args) == {"to": EMAIL, "note": CARD}
    assert_never_seen(fake_openai, fake_anthropic, fake_gemini)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", ["m-anthropic", "m-gemini"])
async def test_responses_function_call_arguments(
    gw: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
    stream: bool,
) -> None:
    reply = Reply(text="", tool_calls=[("send", {"to": "[EMAIL_1]"})])
    fake_anthropic.default = fake_gemini.default = reply
    tools: Any = [{"type": "function", "name": "send", "parameters": {"type": "object"}}]
    history: Any = [
        {"role": "user", "content": f"Mail {EMAIL}."},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "x"}'},
        {"type": "function_call_output", "call_id": "c1", "output": f"card {CARD} phone {PHONE}"},
    ]
    async with gw.openai(await gw.key()) as client:
        if not stream:
            resp = await client.responses.create(model=model, input=history, tools=tools)
        else:
            final, deltas = None, ""
            async for event in await client.responses.create(
                model=model, input=history, tools=tools, stream=True
            ):
                if event.type == "response.function_call_arguments.delta":
                    deltas += event.delta
                elif event.type == "response.completed":
                    final = event.response
            assert final is not None
            assert orjson.loads(deltas) == {"to": EMAIL}
            resp = final
    calls = [item for item in resp.output if item.type == "function_call"]
    assert orjson.loads(calls[0].arguments) == {"to": EMAIL}
    text = seen(fake_anthropic, fake_gemini)
    assert EMAIL not in text and CARD not in text and PHONE not in text


async def test_anthropic_tool_use_and_results(
    gw: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.default = Reply(text="", tool_calls=[("send", {"to": "[EMAIL_1]"})])
    messages: Any = [
        {"role": "user", "content": "Mail the customer."},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": EMAIL}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_1",
                    "content": [{"type": "text", "text": f"card {CARD}, phone {PHONE}"}],
                }
            ],
        },
    ]
    async with anthropic.AsyncAnthropic(
        base_url=gw.url, api_key=await gw.key(), max_retries=0
    ) as client:
        msg = await client.messages.create(
            model="m-anthropic", max_tokens=100, messages=messages, tools=[]
        )
        async with client.messages.stream(
            model="m-anthropic", max_tokens=100, messages=messages
        ) as s:
            final = await s.get_final_message()
    for m in (msg, final):
        uses = [b for b in m.content if b.type == "tool_use"]
        assert uses[0].input == {"to": EMAIL}
    assert_never_seen(fake_anthropic)


# -- embeddings and counts -------------------------------------------------------------


async def test_embeddings_input_is_scrubbed(
    gw: RunningGateway, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    key = await gw.key()
    async with gw.openai(key) as client:
        await client.embeddings.create(
            model="openai/text-embedding-3-small", input=[PROMPT, f"call {PHONE}"]
        )
    assert fake_openai.last.body["input"] == [
        "Write to [EMAIL_1] about card [CARD_1].",
        "call [PHONE_1]",
    ]
    client_g = genai_client(gw, key)
    try:
        await client_g.models.embed_content(
            model="gemini/gemini-embedding-001", contents=[PROMPT, SYSTEM]
        )
    finally:
        await client_g.aclose()
    texts = [r["content"]["parts"][0]["text"] for r in fake_gemini.last.body["requests"]]
    assert texts == [
        "Write to [EMAIL_1] about card [CARD_1].",
        "The customer's phone is [PHONE_1].",
    ]


async def test_count_tokens_is_scrubbed(
    gw: RunningGateway, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    key = await gw.key()
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
        await client.messages.count_tokens(
            model="m-anthropic", system=SYSTEM, messages=[{"role": "user", "content": PROMPT}]
        )
    client_g = genai_client(gw, key)
    try:
        await client_g.models.count_tokens(model="m-gemini", contents=PROMPT)
    finally:
        await client_g.aclose()
    assert "count_tokens" in fake_anthropic.last.path and "countTokens" in fake_gemini.last.path
    text = seen(fake_anthropic, fake_gemini)
    assert EMAIL not in text and CARD not in text and PHONE not in text


async def test_images_pass_unchanged(gw: RunningGateway, fake_openai: FakeOpenAI) -> None:
    image = f"data:image/png;base64,iVBORw0KGgo{EMAIL}"
    async with gw.openai(await gw.key()) as client:
        await client.chat.completions.create(
            model="m-openai",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": PROMPT},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                }
            ],
        )
    content = fake_openai.last.body["messages"][0]["content"]
    assert content[0]["text"] == "Write to [EMAIL_1] about card [CARD_1]."
    assert content[1]["image_url"]["url"] == image


# -- block -----------------------------------------------------------------------------


async def test_block_answers_400_in_each_envelope(
    gw: RunningGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> None:
    key = await gw.key(limits=Limits(scrub=(("card", "block"), ("ssn", "block"))))
    with pytest.raises(openai.BadRequestError) as oai:
        await ask_chat(gw, key, "m-anthropic", True)
    assert oai.value.status_code == 400
    assert isinstance(oai.value.body, dict) and oai.value.body["code"] == "content_blocked"
    with pytest.raises(openai.BadRequestError):
        await ask_responses(gw, key, "m-openai", False)
    with pytest.raises(anthropic.BadRequestError) as ant:
        await ask_anthropic(gw, key, "m-openai", False)
    assert ant.value.status_code == 400
    with pytest.raises(genai.errors.ClientError) as goo:
        await ask_gemini(gw, key, "m-gemini", False)
    assert goo.value.code == 400 and goo.value.status == "INVALID_ARGUMENT"
    for err in (str(oai.value), str(ant.value), str(goo.value)):
        assert "content_blocked" in err and "card" in err
        assert CARD not in err and "4111" not in err and "ssn" not in err
    assert not (fake_openai.requests or fake_anthropic.requests or fake_gemini.requests)


# -- per-team and per-key overrides through the CLI ------------------------------------


async def cli(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
async def served(
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningGateway]:
    """A gateway on the CLI's own state file, so `aigw teams/keys` change what it does."""
    _provider_keys(monkeypatch)
    cfg = Config()
    for name, (type_, url) in _providers(fake_openai, fake_anthropic, fake_gemini).items():
        cfg.providers[name] = provider_config(name, type_, url)
    for name, (prov, model) in MODELS.items():
        cfg.models[name] = ModelConfig(name, prov, model)
    state = paths.resolve().state_file
    server = await listening(create_app(cfg, state))
    yield RunningGateway(server.app, server.runner, server.port, state)
    await server.runner.cleanup()


async def _chat(gw: RunningGateway, key: str, text: str) -> str:
    async with gw.openai(key) as client:
        resp = await client.chat.completions.create(
            model="m-openai", messages=[{"role": "user", "content": text}]
        )
        return resp.choices[0].message.content or ""


async def test_team_and_key_overrides_from_the_cli(
    served: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    r = await cli("teams", "create", "team-a", "--scrub", "email=block")
    assert r.exit_code == 0, r.output
    r = await cli("keys", "create", "--team", "team-a", "--json")
    team_key = orjson.loads(r.stdout)["key"]
    r = await cli("keys", "create", "--team", "team-a", "--scrub", "email=redact", "--json")
    assert r.exit_code == 0, r.output
    own = orjson.loads(r.stdout)
    assert own["limits"]["scrub"] == {"email": "redact"}
    directory = served.gw.directory

    def team_scrub() -> Any:
        team = directory.team("team-a")
        return team.limits.scrub if team is not None else None

    await until(lambda: team_scrub() == (("email", "block"),))
    # The team blocks email; the key's own override (redact) wins for that key.
    with pytest.raises(openai.BadRequestError, match="content_blocked"):
        await _chat(served, team_key, f"mail {EMAIL}")
    assert not fake_openai.requests
    fake_openai.default = Reply(text="ok [EMAIL_1]")
    assert await _chat(served, own["key"], f"mail {EMAIL}") == f"ok {EMAIL}"
    assert fake_openai.last.body["messages"][0]["content"] == "mail [EMAIL_1]"

    r = await cli("teams", "update", "team-a", "--scrub", "email=default,phone=block", "--json")
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["scrub"] == {"phone": "block"}
    await until(lambda: team_scrub() == (("phone", "block"),))
    fake_openai.default = Reply(text="ok")
    assert await _chat(served, team_key, f"mail {EMAIL}") == "ok"  # email: logged only
    assert fake_openai.last.body["messages"][0]["content"] == f"mail {EMAIL}"
    with pytest.raises(openai.BadRequestError, match="phone"):
        await _chat(served, team_key, f"call {PHONE}")

    r = await cli("keys", "update", own["id"], "--scrub", "none", "--json")
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["limits"] is None  # no override left, no limit


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("email=nuke", "unknown action 'nuke' for email"),
        ("passport=log", "unknown detector 'passport'"),
        ("email", "expected DETECTOR=ACTION"),
    ],
)
def test_bad_scrub_option_is_explained(value: str, message: str) -> None:
    r = CliRunner().invoke(cli_app, ["teams", "create", "t", "--scrub", value])
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
