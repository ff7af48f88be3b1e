"""Access logs: one line per request, with who, what, where, how and what it cost;
never a key nor a body; nothing a client sends can forge a line."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigw import config as config_mod
from aigw.config import ModelConfig
from aigw.errors import ConfigError
from aigw.observe import access
from tests.conftest import RunningGateway, provider_config, until
from tests.fakes.base import Fail
from tests.fakes.openai import FakeOpenAI
from tests.serverproc import start_server

HI = [{"role": "user", "content": "a secret prompt"}]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aigw.access"]


async def test_one_line_per_request_with_its_fields(
    gateway: RunningGateway, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aigw.access")
    key = await gateway.key(team="team-a", app="web")
    async with gateway.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(model="fast", messages=HI)
        stream = await client.chat.completions.create(model="fast", messages=HI, stream=True)
        async for _ in stream:
            pass
        fake_openai.then(Fail(500, "boom"))
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="fast", messages=HI)
    async with gateway.openai("aigw-not-a-key") as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="fast", messages=HI)
    records = access_lines(caplog)
    assert len(records) == 4
    first, streamed, failed, refused = (r.args[0].fields for r in records)  # type: ignore[index]
    assert first["request_id"] == raw.headers["x-request-id"]
    assert first["team"] == "team-a" and first["app"] == "web"
    assert first["key_id"].startswith("key_")
    assert first["model"] == "fast" and first["provider"] == "openai"
    assert first["upstream_model"] == "gpt-4o-mini"
    assert first["status"] == 200 and first["attempts"] == 1
    assert (first["tokens_in"], first["tokens_out"]) == (11, 7)
    assert first["cost_usd"] == raw.headers["x-aigw-cost-usd"]
    assert first["latency_ms"] >= 0 and first["stream"] is False
    assert streamed["stream"] is True and streamed["status"] == 200
    assert streamed["ttft_ms"] is not None and streamed["ttft_ms"] <= streamed["latency_ms"]
    assert failed["status"] >= 500 and failed["provider"] == "openai"
    assert refused["status"] == 401 and refused["team"] is None and refused["key_id"] is None
    for r in records:
        line = r.getMessage()
        assert "\n" not in line
        assert key not in line and "aigw-not-a-key" not in line
        assert "secret prompt" not in line
        assert "Hello from the fake provider" not in line
        assert f"request_id={r.args[0].fields['request_id']} " in line  # type: ignore[index]
        assert " stream=true " in line or " stream=false " in line
        as_json = json.loads(access.JsonFormatter().format(r))
        assert as_json["logger"] == "aigw.access"
        assert as_json["request_id"] == r.args[0].fields["request_id"]  # type: ignore[index]


async def test_a_client_chosen_string_cannot_forge_a_line(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aigw.access")
    forged = 'web\n2026-01-01 INFO aigw.access: team=admin status=200 "x\u2028'
    key = await gateway.key(team="team-a", app=forged)
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
    (record,) = access_lines(caplog)
    text = record.getMessage()
    assert "\n" not in text and "\u2028" not in text
    assert 'app="web\\x0a2026-01-01 INFO aigw.access: team=admin status=200 \\"x\\u2028"' in text
    line = access.JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["app"] == forged


def test_text_values_are_quoted_and_escaped() -> None:
    values: list[object] = [None] * len(access.NAMES)
    values[0] = 1796169600.25  # time
    values[1:4] = ["req_1", "chat completions", ""]  # request_id, endpoint, team
    values[5] = 'x"y=z'  # app
    values[9:11] = [200, True]  # status, stream
    values[15] = 1_500_000_000  # cost in nano-USD
    line = str(access.AccessLine(tuple(values)))
    assert line.startswith(
        'time=2026-12-02T00:00:00.250Z request_id=req_1 endpoint="chat completions" '
        'team="" key_id=- app="x\\"y=z" model=-'
    )
    assert " status=200 stream=true " in line and " cost_usd=1.500000000 " in line
    assert access.neutral("a\x1bb\rc\x85") == "a\\x1bb\\x0dc\\x85"


def _line_with(**fields: object) -> str:
    values: list[object] = [None] * len(access.NAMES)
    values[0], values[9], values[10] = 1796169600.0, 200, False
    for name, value in fields.items():
        values[access.NAMES.index(name)] = value
    return str(access.AccessLine(tuple(values)))


def test_remembered_values_stay_bounded() -> None:
    access._shown.clear()
    for i in range(10 * access.REMEMBER):
        _line_with(model=f"m{i}", team="team-a")
        assert len(access._shown) <= access.REMEMBER
    # A long value (a client's made-up model name) is shown, never kept.
    huge = "x" * (access.REMEMBER_CHARS + 1)
    assert f" model={huge} " in _line_with(model=huge)
    assert huge not in access._shown
    assert all(len(k) <= access.REMEMBER_CHARS for k in access._shown)
    # The request id differs on every line: not remembered at all.
    _line_with(request_id="req_unique")
    assert "req_unique" not in access._shown


def test_remembered_values_are_still_escaped() -> None:
    access._shown.clear()
    hostile = {
        "model": 'gpt"4\n',
        "team": "a\nteam=admin",
        "app": "\x1b[31mred\x1b[0m",
        "upstream_model": "x\u2028y",
        "provider": "",
        "endpoint": "a b",
    }
    shown = {
        "model": '"gpt\\"4\\x0a"',
        "team": '"a\\x0ateam=admin"',
        "app": '"\\x1b[31mred\\x1b[0m"',
        "upstream_model": '"x\\u2028y"',
        "provider": '""',
        "endpoint": '"a b"',
    }
    for _ in range(2):  # computed, then remembered: the same text
        line = _line_with(**hostile)
        assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
        for name, text in shown.items():
            assert f" {name}={text} " in line, (name, line)
    assert access._shown.keys() >= set(hostile.values())


def _generic_line(line: access.AccessLine) -> str:
    """The logfmt rule spelled out field by field: what the one f-string must equal."""
    parts = []
    for k, x in line.fields.items():
        if isinstance(x, str):
            shown = x if x and not access._NEEDS_QUOTES.search(x) else access._quoted(x)
        elif x is None:
            shown = "-"
        elif isinstance(x, bool):
            shown = "true" if x else "false"
        else:
            shown = str(x)
        parts.append(f"{k}={shown}")
    return " ".join(parts)


_TEXT = st.none() | st.text(max_size=12)
_INT = st.integers(min_value=0, max_value=10**12)


@settings(max_examples=300, deadline=None)
@given(
    ts=st.floats(min_value=0, max_value=4e9),
    texts=st.lists(_TEXT, min_size=9, max_size=9),
    ints=st.lists(_INT, min_size=6, max_size=6),
    ttft=st.none() | _INT,
    cost=st.none() | _INT,
    stream=st.booleans(),
    cache=_TEXT,
)
def test_the_line_is_logfmt_of_its_fields(
    ts: float,
    texts: list[str | None],
    ints: list[int],
    ttft: int | None,
    cost: int | None,
    stream: bool,
    cache: str | None,
) -> None:
    values = (
        ts,
        *texts[:8],
        ints[0],
        stream,
        ints[1],
        ttft,
        ints[2],
        ints[3],
        cost,
        ints[4],
        cache,
    )
    line = access.AccessLine(values)
    assert str(line) == _generic_line(line)
    assert "\n" not in str(line) and "\u2028" not in str(line)


async def test_the_server_sink_writes_access_lines_in_order_and_in_batches() -> None:
    stream = io.StringIO()
    sink = access.Sink(json=False)
    sink.setStream(stream)
    sink.setFormatter(access.TextFormatter(access.TEXT_FORMAT))
    values: list[object] = [None] * len(access.NAMES)
    values[0], values[9], values[10] = 1796169600.0, 200, False

    def line(n: int) -> access.AccessLine:
        values[1] = f"req_{n}"
        return access.AccessLine(tuple(values))

    sink.access(line(1))
    sink.access(line(2))
    assert stream.getvalue() == ""  # held for the batch
    sink.emit(logging.makeLogRecord({"name": "aigw", "msg": "a warning", "levelno": 30}))
    written = stream.getvalue().splitlines()
    assert [w.split()[1] for w in written[:2]] == ["request_id=req_1", "request_id=req_2"]
    assert written[2].endswith("a warning")  # after the lines that came before it
    for n in range(access.Sink.BATCH):
        sink.access(line(100 + n))
    assert len(stream.getvalue().splitlines()) == 3 + access.Sink.BATCH  # a full batch: now
    sink.access(line(999))
    await until(lambda: "req_999" in stream.getvalue())  # the timer writes the last one
    json_sink = access.Sink(json=True)
    json_sink.setStream(stream)
    json_sink.access(line(7))
    json_sink.flush()
    assert json.loads(stream.getvalue().splitlines()[-1])["request_id"] == "req_7"


async def test_nothing_is_built_when_the_access_log_is_off(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aigw.access")

    def boom(values: object) -> None:
        raise AssertionError("a line built with the access log off")

    monkeypatch.setattr(access, "AccessLine", boom)
    key = await gateway.key()
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="mock/echo", messages=HI)
    assert access_lines(caplog) == []


def test_log_format_is_checked_in_the_config() -> None:
    assert config_mod.parse({"server": {"log_format": "json"}}).server.log_format == "json"
    with pytest.raises(ConfigError, match=r"server.log_format: must be one of"):
        config_mod.parse({"server": {"log_format": "xml"}})


@pytest.mark.slow
async def test_serve_writes_json_access_lines(isolated_home: Path, fake_openai: FakeOpenAI) -> None:
    cfg = config_mod.default_config()
    cfg.server.log_format = "json"
    cfg.providers["openai"] = provider_config("openai", "openai", fake_openai.base_url + "/v1")
    cfg.models["fast"] = ModelConfig("fast", "openai", "gpt-4o-mini")
    server = await start_server(
        isolated_home, cfg, {"AIGW_OPENAI_API_KEY": "sk-upstream"}, log_level="info"
    )
    try:
        from aigw.store.sqlite import keys as keystore
        from aigw.store.sqlite.db import open_database

        db = await open_database(isolated_home / "state.db")
        try:
            key, _ = await keystore.create(db, team="ops", app="cli")
        finally:
            await db.close()
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=key, max_retries=0
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(model="fast", messages=HI)
        rid = raw.headers["x-request-id"]
        line = await server.wait_output(rid)
    finally:
        assert await server.stop() == 0
    entry = json.loads(line)
    assert entry["logger"] == "aigw.access" and entry["team"] == "ops"
    assert entry["status"] == 200 and entry["provider"] == "openai"
    assert entry["tokens_in"] == 11 and entry["cost_usd"] is not None
    out = "".join(server.output)
    assert key not in out and "sk-upstream" not in out and "secret prompt" not in out
    # Every other log record is JSON too.
    for text in server.output:
        if text.startswith("{"):
            json.loads(text)
