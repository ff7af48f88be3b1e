"""The scrub detectors: true and false positives per detector, redaction and restore."""
# ruff: noqa: E501  (test data: one case a line reads best)

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigw.model import new_key
from aigw.scrub.detectors import DETECTORS, Scanner, card_ok, iban_ok, luhn
from aigw.scrub.redact import Redactor, content_blocked, make_policy
from aigw.scrub.restore import Restorer
from aigw.scrub.visit import visit

ALL = frozenset(DETECTORS)
SCANNER = Scanner()


def found(text: str, scanner: Scanner = SCANNER) -> list[tuple[str, str]]:
    return [(f.detector, text[f.start : f.end]) for f in scanner.scan(text, ALL)]


def kinds(text: str) -> list[str]:
    return [kind for kind, _ in found(text)]


# -- true positives ------------------------------------------------------------------

TRUE = [
    ("email", "Write to alice.smith+news@example.co.uk today", "alice.smith+news@example.co.uk"),
    ("email", "<bob@corp.example.org>", "bob@corp.example.org"),
    ("phone", "Call +1 415-555-2671 now", "+1 415-555-2671"),
    ("phone", "Call (212) 555-0187.", "(212) 555-0187"),
    ("phone", "Ring +44 20 7946 0958 please", "+44 20 7946 0958"),
    ("phone", "call 415.555.2671 or", "415.555.2671"),
    ("phone", "call 415 555 2671 12 times", "415 555 2671"),
    ("card", "card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
    ("card", "card 5500-0000-0000-0004.", "5500-0000-0000-0004"),
    ("card", "amex 378282246310005", "378282246310005"),
    ("ssn", "SSN 536-90-4399 on file", "536-90-4399"),
    ("ssn", "SSN 536 90 4399", "536 90 4399"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    ("iban", "to GB29NWBK60161331926819.", "GB29NWBK60161331926819"),
    ("iban", "NL91 ABNA 0417 1643 00 AND MORE", "NL91 ABNA 0417 1643 00"),
    ("ip", "server at 192.168.10.20 is down", "192.168.10.20"),
    ("ip", "ping 10.0.0.1.", "10.0.0.1"),
    ("ip", "host 2001:db8:85a3::8a2e:370:7334 up", "2001:db8:85a3::8a2e:370:7334"),
    ("ip", "loopback ::1 and", "::1"),
    ("ip", "full 2001:0db8:0000:0000:0000:ff00:0042:8329!", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
    ("secret", "key sk-proj-abc123DEF456ghi789JKL012mno345pqr", "sk-proj-abc123DEF456ghi789JKL012mno345pqr"),
    ("secret", "key=sk-ant-api03-abcdefghij0123456789XYZ", "sk-ant-api03-abcdefghij0123456789XYZ"),
    ("secret", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("secret", "aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    ("secret", "aws ASIAY34FZKBOKMUTVV7A here", "ASIAY34FZKBOKMUTVV7A"),
    ("secret", "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("secret", "github_pat_11ABCDEFG0123456789_abcdefghij", "github_pat_11ABCDEFG0123456789_abcdefghij"),
    ("secret", "slack xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF"),
    ("secret", "stripe sk_live_51Habcdefghijklmnop0123", "sk_live_51Habcdefghijklmnop0123"),
    ("secret", "stripe rk_live_51Habcdefghijklmnop0123", "rk_live_51Habcdefghijklmnop0123"),
    (
        "secret",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    (
        "secret",
        "pem:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nend",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text", "value"), TRUE)
def test_true_positive(kind: str, text: str, value: str) -> None:
    assert found(text) == [(kind, value)]


def test_aigw_keys_are_secrets() -> None:
    key = new_key()
    assert found(f"my gateway key is {key}.") == [("secret", key)]


# -- false positives -----------------------------------------------------------------

FALSE = [
    "no email in user@localhost or @mention or a@b",
    "card 4111 1111 1111 1112 fails Luhn",
    "card 1234 5678 9012 3456 fails Luhn",
    "all fours 4444 4444 4444 4444",
    "order 1000000000000000000000 id",
    "IBAN DE89 3704 0044 0532 0130 01 fails mod-97",
    "IBAN DE89 3704 0044 0532 0130 fails the length",
    "XX89 3704 0044 0532 0130 00 is no country",
    "version 1.2.3.4 is out",
    "upgrade to v1.2.3.4 now",
    "pip install pkg==1.2.3.4",
    "octets 300.1.1.1 too big",
    "version 1.2.3.4.5 is long",
    "the pi is 3.14159265358979",
    "timestamp 1700000000 and id 4155552671",
    "on 2024-01-15 and 15/01/2024",
    "std::vector and a::b in C++",
    "at 12:30:45 sharp",
    "mac 00:1A:2B:3C:4D:5E",
    "SSN 000-12-3456 and 666-12-3456 and 912-12-3456 and 536-00-4399 and 536-90-0000",
    "the example SSN 078-05-1120",
    "the task-management-system-for-production-use",
    "sk-this-is-just-a-long-hyphenated-phrase",
    "eyJhbGciOiJIUzI1NiJ9 alone is not a token",
    "eyJub3RhIjoiand0In0.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlaGVyZQ no alg header",
    "AKIA1234 too short",
    "numbers 1 2 3 4 5 6 7 8 9 10 11 12",
    "price $1,234,567.89",
    "",
]


@pytest.mark.parametrize("text", FALSE)
def test_false_positive(text: str) -> None:
    assert found(text) == []


def test_validators() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert card_ok("4111-1111-1111-1111") and not card_ok("4111-1111 1111-1111")
    assert not card_ok("1111111111111117")  # not a card network's first digit
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE88 3704 0044 0532 0130 00")


def test_overlaps_keep_the_first_and_strongest() -> None:
    text = "mail sk-proj-abc123DEF456ghi789JKL012mno345@example.com"
    assert kinds(text)[0] == "secret"
    assert len(SCANNER.scan(text, ALL)) == 1


def test_only_enabled_detectors_run() -> None:
    text = "alice@example.com 4111 1111 1111 1111"
    assert [f.detector for f in SCANNER.scan(text, frozenset({"card"}))] == ["card"]


def test_custom_detector() -> None:
    scanner = Scanner({"employee_id": re.compile(r"EMP-[0-9]{6}")})
    text = "badge EMP-123456 and EMP-12"
    assert [
        (f.detector, text[f.start : f.end]) for f in scanner.scan(text, frozenset({"employee_id"}))
    ] == [("employee_id", "EMP-123456")]


def test_phone_region_reads_national_numbers() -> None:
    de = Scanner(region="DE")
    text = "Ruf an: 030 901820"
    assert [f.detector for f in de.scan(text, ALL)] == ["phone"]
    assert found(text) == []  # not a US number


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_scan_never_fails_and_spans_are_sane(text: str) -> None:
    last = 0
    for f in SCANNER.scan(text, ALL):
        assert last <= f.start < f.end <= len(text)
        last = f.end


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["word", " ", "4111 1111 1111 1111", "a@b.io", "\n", "x"]), max_size=30
    )
)
def test_redact_then_restore_is_the_identity(pieces: list[str]) -> None:
    text = " ".join(pieces)  # glued to a word, a number is part of an identifier
    red = Redactor(SCANNER, make_policy(dict.fromkeys(DETECTORS, "redact")))
    scrubbed = red.text(text)
    assert "4111 1111 1111 1111" not in scrubbed and "a@b.io" not in scrubbed
    if red.originals:
        assert Restorer(red.originals, None).text(scrubbed) == text
    else:
        assert scrubbed == text


# -- redaction -----------------------------------------------------------------------


def test_same_value_same_placeholder_and_counts() -> None:
    policy = make_policy({"email": "redact", "card": "log", "phone": "off"})
    red = Redactor(SCANNER, policy)
    out = red.text("a@x.io, b@x.io, a@x.io; card 4111 1111 1111 1111; +1 415-555-2671")
    assert out == "[EMAIL_1], [EMAIL_2], [EMAIL_1]; card 4111 1111 1111 1111; +1 415-555-2671"
    assert red.counts == {"email": 3, "card": 1}
    assert red.originals == {"[EMAIL_1]": "a@x.io", "[EMAIL_2]": "b@x.io"}
    assert red.text("again a@x.io") == "again [EMAIL_1]"  # across texts of one request


def test_narrowest_scope_wins_per_detector() -> None:
    base = {"email": "log", "phone": "log", "card": "redact"}
    policy = make_policy(base, (("email", "block"), ("phone", "redact")), (("email", "off"),))
    assert dict(policy.actions) == {"email": "off", "phone": "redact", "card": "redact"}
    assert policy.enabled == {"phone", "card"}


def test_block_names_detectors_never_values() -> None:
    red = Redactor(SCANNER, make_policy({"email": "block", "ssn": "block"}))
    red.text("mail a@x.io ssn 536-90-4399")
    assert red.blocked == {"email", "ssn"}
    err = content_blocked(sorted(red.blocked))
    assert err.status == 400 and err.code == "content_blocked"
    assert "email, ssn" in err.message
    assert "a@x.io" not in err.message and "536" not in err.message


def test_tool_arguments_are_scrubbed_inside_their_json() -> None:
    red = Redactor(SCANNER, make_policy({"email": "redact"}))
    body: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi a@x.io"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,a@x.io"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"to": "a@x.io"}'}}]},
            {"role": "tool", "tool_call_id": "c", "content": "sent to a@x.io"},
        ]
    }  # fmt: skip
    visit("chat.completions", body, red.text)
    dumped = orjson.dumps(body).decode()
    assert dumped.count("a@x.io") == 1  # only inside the image, passed as it is
    assert orjson.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "[EMAIL_1]"
    }


# -- restore -------------------------------------------------------------------------


def test_restore_escapes_values_in_json_text() -> None:
    r = Restorer({"[SECRET_1]": 'a"b\nc'}, None)
    raw = orjson.dumps(
        {"text": "k=[SECRET_1]", "arguments": orjson.dumps({"k": "[SECRET_1]"}).decode()}
    )
    out = orjson.loads(r.json(raw))
    assert out["text"] == 'k=a"b\nc'
    assert orjson.loads(out["arguments"]) == {"k": 'a"b\nc'}


def test_restore_leaves_unknown_brackets_and_fast_path() -> None:
    r = Restorer({"[EMAIL_1]": "a@x.io"}, None)
    raw = b'{"text": "[EMAIL_2] [link](x)"}'
    assert r.json(raw) is raw


def _sse(*payloads: dict[str, object], event: str | None = None) -> list[bytes]:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return [head + b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]


def _openai_chunk(text: str, finish: str | None = None) -> dict[str, object]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}  # fmt: skip


def _openai_text(out: bytes) -> str:
    text = ""
    for block in out.split(b"\n\n"):
        if block.startswith(b"data: {"):
            for choice in orjson.loads(block[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


@pytest.mark.parametrize("cut", range(1, 9))
def test_stream_placeholder_split_anywhere(cut: int) -> None:
    holder = "[EMAIL_1]"
    r = Restorer({holder: "a@x.io", "[EMAIL_10]": "z@x.io"}, "openai")
    s = r.stream()
    text = f"Write to {holder} or [EMAIL_10] today, [note]"
    at = text.index(holder) + cut
    chunks = _sse(_openai_chunk(text[:at]), _openai_chunk(text[at:]), _openai_chunk("", "stop"))
    out = b"".join(s.feed(c) for c in chunks) + s.feed(b"data: [DONE]\n\n") + s.flush()
    assert _openai_text(out) == "Write to a@x.io or z@x.io today, [note]"
    assert out.endswith(b"data: [DONE]\n\n")


def test_stream_flushes_a_held_piece_before_the_end() -> None:
    r = Restorer({"[EMAIL_1]": "a@x.io"}, "anthropic")
    s = r.stream()
    out = b"".join(
        s.feed(c)
        for c in [
            *_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "costs [EM"}}, event="content_block_delta"),
            *_sse({"type": "content_block_stop", "index": 0}, event="content_block_stop"),
        ]
    )  # fmt: skip
    texts = [
        orjson.loads(b.split(b"data: ", 1)[1])
        for b in out.split(b"\n\n")
        if b.startswith(b"event: content_block_delta")
    ]
    assert "".join(t["delta"]["text"] for t in texts) == "costs [EM"
    assert out.rstrip().endswith(b'{"type":"content_block_stop","index":0}')


@pytest.mark.parametrize("kind", ["openai", "responses", "anthropic", "gemini"])
def test_stream_restore_survives_odd_shapes(kind: str) -> None:
    """A provider's stream may be malformed: the restorer passes it on, never fails."""
    s = Restorer({"[EMAIL_1]": "a@x.io"}, kind).stream()
    odd = [
        {"choices": 7, "candidates": "x", "type": "content_block_delta", "delta": 5},
        {"choices": [{"index": {}, "delta": {"content": "[EM", "tool_calls": 3}}]},
        {"candidates": [{"index": [], "content": {"parts": [{"text": "[EM"}, 4]}}]},
        {"type": "x.delta", "delta": "[EM", "output_index": {}},
        {"type": "content_block_delta", "index": [], "delta": {"type": "text_delta", "text": "[E"}},
        ["[EMAIL_1]"],
    ]
    out = b"".join(s.feed(c) for c in _sse(*odd)) + s.flush()  # type: ignore[arg-type]
    assert out.count(b"data: ") >= len(odd)
