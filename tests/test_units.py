"""Unit tests of the pure pieces: SSE parsing, pricing, config round trip, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aigw import config as config_mod
from aigw.config import PriceConfig, ProviderConfig
from aigw.errors import StoreError
from aigw.pricing import PriceBook, format_usd, load_shipped, micro
from aigw.sse import SSEParser
from aigw.store import open_database
from aigw.store.sqlite.migrations import MIGRATIONS
from aigw.usage import Usage, usage_from_openai


def test_sse_parser_handles_split_chunks_crlf_and_comments() -> None:
    stream = (
        b': keep-alive\r\n\r\nevent: message_start\r\ndata: {"a": 1}\r\n\r\ndata: x\ndata: y\n\n'
    )
    events = []
    p = SSEParser()
    for i in range(len(stream)):  # one byte at a time: the worst split possible
        events += p.feed(stream[i : i + 1])
    events += p.flush()
    assert [(e.event, e.data) for e in events] == [("message_start", b'{"a": 1}'), (None, b"x\ny")]
    assert events[0].encode() == b'event: message_start\ndata: {"a": 1}\n\n'


def test_sse_parser_flushes_an_unterminated_last_event() -> None:
    p = SSEParser()
    assert p.feed(b"data: [DONE]") == []
    assert [e.data for e in p.flush()] == [b"[DONE]"]


def test_price_math_is_exact_integer_nano_usd() -> None:
    book = PriceBook(
        {"m": PriceConfig(input=0.123457, output=1.5, cached_input=0.05)}, load_shipped()
    )
    u = Usage(prompt_tokens=1237, completion_tokens=3, cached_tokens=200)
    # (1037 x 0.123457 + 200 x 0.05 + 3 x 1.5) micro-USD = 142.524909 micro-USD
    assert book.cost_nusd("p", "m", u) == 142525  # rounded half-even to nano-USD
    assert format_usd(142525, 9) == "0.000142525"
    assert format_usd(None) == "unpriced"
    assert micro("0.000001") == 1
    with pytest.raises(ValueError):
        micro("0.0000001")


def test_shipped_table_lookup_aliases_dates_and_long_context() -> None:
    shipped = load_shipped()
    assert shipped.taken >= "2026-01-01"
    book = PriceBook({}, shipped)
    assert book.lookup("openai", "gpt-4o-2024-08-06") is not None  # dated snapshot
    assert book.lookup("gemini", "models/gemini-2.5-pro") is not None  # resource name
    assert book.lookup("openai", "surely-not-a-model") is None
    # A model with a long-context tier is dearer past its threshold.
    long = next(p for p in shipped.prices.values() if p.long is not None)
    assert long.long_threshold is not None
    small = Usage(prompt_tokens=long.long_threshold, completion_tokens=100)
    big = Usage(prompt_tokens=long.long_threshold + 1, completion_tokens=100)
    assert long.cost_nusd(big) > long.cost_nusd(small)
    for price in shipped.prices.values():
        assert price.base.input >= 0 and price.base.output >= 0


def test_usage_from_openai_reads_chat_and_responses_shapes() -> None:
    chat = usage_from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert chat == Usage(10, 5, 4, 0, 2)
    responses = usage_from_openai(
        {
            "input_tokens": 7,
            "output_tokens": 3,
            "input_tokens_details": {"cached_tokens": 1},
            "output_tokens_details": {"reasoning_tokens": 1},
        }
    )
    assert responses == Usage(7, 3, 1, 0, 1)
    assert usage_from_openai(None) is None


def test_config_round_trips_through_render(tmp_path: Path) -> None:
    cfg = config_mod.default_config()
    cfg.providers["azure"] = ProviderConfig(
        "azure",
        "openai",
        "https://x.example/openai",
        {"X-Team": "a"},
        {"api-version": "1"},
        "api-key",
    )
    cfg.models["fast"] = config_mod.ModelConfig("fast", "azure", "gpt-4o")
    cfg.prices["azure/gpt-4o"] = PriceConfig(2.5, 10, 1.25)
    cfg.server.port = 9000
    path = tmp_path / "c.toml"
    config_mod.save(cfg, path)
    back = config_mod.load(path)
    back.path = None
    cfg.path = None
    assert back == cfg
    assert path.read_text().count("#") > 10  # the comments survive every save


async def test_migrations_from_blank_and_refuse_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = await open_database(path)
    await db.close()
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        assert names == [name for name, _ in MIGRATIONS]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("INSERT INTO _migrations VALUES ('9999_from_the_future', 0)")
    with pytest.raises(StoreError, match="newer aigw"):
        await open_database(path)


async def test_reopening_is_idempotent(tmp_path: Path) -> None:
    for _ in range(3):
        db = await open_database(tmp_path / "s.db")
        await db.close()


def test_openai_stream_fast_path_recognises_special_chunks_with_or_without_spaces() -> None:
    from aigw.providers.openai import OpenAIStream
    from aigw.sse import Event

    def ev(data: bytes) -> Event:
        return Event(b"data: " + data, None, data)

    s = OpenAIStream(wants_usage=False)
    content = b'{"choices":[{"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}'
    assert s.feed(ev(content)) == b"data: " + content + b"\n\n"
    assert s.state.chars == 5 and not s.state.finished
    spaced = b'{"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": null}'
    assert s.feed(ev(spaced))
    assert s.state.finished
    usage = b'{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}'
    assert s.feed(ev(usage)) == b""  # the client did not ask for it
    assert s.state.usage == Usage(3, 2)
    assert s.feed(ev(b'{"error": {"message": "boom"}}')) == b""
    assert s.state.error is not None and "boom" in s.state.error.message


def test_sse_parser_fast_and_general_paths_agree() -> None:
    stream = (
        b"data: one\n\n"
        b"event: message_delta\ndata: {}\n\n"
        b"event: multi\ndata: a\ndata: b\n\n"
        b"id: 7\ndata: with-id\n\n"
        b"event: only-event\n\n"
    )
    events = SSEParser().feed(stream)
    assert [(e.event, e.data) for e in events] == [
        (None, b"one"),
        ("message_delta", b"{}"),
        ("multi", b"a\nb"),
        (None, b"with-id"),
        ("only-event", b""),
    ]
