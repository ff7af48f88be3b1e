"""The compact ledger (0011_ledger_compact): rows read back exactly as written, old
files convert, names of any shape intern, and a call is found by its request id."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import sqlite3
from dataclasses import astuple, fields, replace
from pathlib import Path

import pytest

from aigw.model import LedgerRow
from aigw.pipeline.context import new_request_id
from aigw.store import open_database
from aigw.store.sqlite import ledger, maintenance
from aigw.store.sqlite.audit_codec import SQL_FUNCTIONS
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.migrations import MIGRATIONS
from aigw.store.sqlite.rollups import DAY, HOUR
from tests.conftest import RunningGateway
from tests.fakes.base import Reply
from tests.fakes.openai import FakeOpenAI

T0 = 1_764_547_200  # 2025-12-01 00:00 UTC
HI = [{"role": "user", "content": "hi"}]
PREVIOUS = [m for m in MIGRATIONS if m[0] < "0011"]  # the schema before
# Ids NUMERIC affinity would turn into numbers (or reshape) if stored as text.
NUMERIC_LOOKING = ["007", "12", "1e3", "0x1F", " 5", "-3", "NaN", "9" * 128, "1.50", "+7"]


def row(ts: float, **changes: object) -> LedgerRow:
    base = LedgerRow(
        ts=ts,
        request_id=new_request_id(ts),
        key_id="key_a1",
        team="a",
        app="web",
        endpoint="chat.completions",
        model="gpt-x",
        provider="openai",
        upstream_model="gpt-x",
        status=200,
        stream=False,
        prompt_tokens=120,
        completion_tokens=30,
        cached_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        usage_estimated=False,
        cost_nusd=12_345,
        latency_ms=420,
        error=None,
        upstream_request_id=None,
        attempts=1,
        routing=None,
        cache=None,
        saved_nusd=0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def varied_rows(rnd: random.Random, n: int) -> list[LedgerRow]:
    """Every field in its shapes: None, equal and different upstream models, each cache
    kind, hex and other upstream ids, errors, routing, flags; times on and just below
    hour boundaries, and several rows sharing one time."""
    out = []
    shared = T0 + 1234.5
    for i in range(n):
        pick = rnd.random()
        if pick < 0.1:
            ts = float(T0 + rnd.randrange(48) * HOUR)
        elif pick < 0.2:
            ts = math.nextafter(float(T0 + rnd.randrange(1, 48) * HOUR), 0)
        elif pick < 0.3:
            ts = shared
        else:
            ts = T0 + rnd.random() * 2 * DAY
        model = rnd.choice(["gpt-x", "claude-y", None])
        cache = rnd.choice([None, "hit", "miss", "bypass"])
        status = rnd.choice([200, 200, 429, 500])
        out.append(
            LedgerRow(
                ts=ts,
                request_id=rnd.choice(
                    [new_request_id(ts), f"req_{rnd.getrandbits(96):024x}", f"client-{i}"]
                ),
                key_id=rnd.choice([None, "key_a1", "key_b2"]),
                team=rnd.choice([None, "a", "b"]),
                app=rnd.choice([None, "web"]),
                endpoint=rnd.choice(["chat.completions", "embeddings", "responses"]),
                model=model,
                provider=rnd.choice([None, "openai", "anthropic"]),
                upstream_model=rnd.choice([model, model, None, "other-model"]),
                status=status,
                stream=rnd.random() < 0.5,
                prompt_tokens=rnd.randrange(0, 10**6),
                completion_tokens=rnd.randrange(0, 10**4),
                cached_tokens=rnd.randrange(0, 100),
                cache_write_tokens=rnd.randrange(0, 100),
                reasoning_tokens=rnd.randrange(0, 100),
                usage_estimated=rnd.random() < 0.2,
                cost_nusd=rnd.choice([None, 0, rnd.randrange(10**13)]),
                latency_ms=rnd.randrange(0, 60_000),
                error=None if status < 400 else f"upstream answered {status}",
                upstream_request_id=rnd.choice(
                    [
                        None,
                        f"req_{rnd.getrandbits(128):032x}",
                        "req_011CSHoEeqs5C35K2UUqR7Fy",
                        "req_ABCD",  # upper-case hex: kept as text
                        "req_abc",  # odd length: kept as text
                    ]
                ),
                attempts=rnd.randrange(0, 4),
                routing=rnd.choice([None, '{"failed": [], "skipped": []}']),
                cache=cache,
                saved_nusd=rnd.randrange(1, 10**9) if cache == "hit" else 0,
            )
        )
    return out


def same_row(got: LedgerRow, want: LedgerRow) -> bool:
    """Equal in every field; the time to the microsecond (a row sharing its microsecond
    with another moves to a free one next to it)."""
    return abs(got.ts - want.ts) < 1e-3 and replace(got, ts=0.0) == replace(want, ts=0.0)


async def all_rows(db: Database) -> list[LedgerRow]:
    names = ", ".join(f.name for f in fields(LedgerRow))
    rows = await db.fetchall(f"SELECT {names} FROM ledger ORDER BY id")
    return [
        LedgerRow(
            **{
                **dict(r),
                "stream": bool(r["stream"]),
                "usage_estimated": bool(r["usage_estimated"]),
            }
        )
        for r in rows
    ]


async def assert_exact(db: Database, written: list[LedgerRow]) -> None:
    """Every row reads back, is found by its id, and the rollups agree with it."""
    stored = await all_rows(db)
    assert len(stored) == len(written)
    ids = [r[0] for r in await db.fetchall("SELECT id FROM ledger_rows")]
    assert len(set(ids)) == len(ids)
    for want in written:
        found = await ledger.by_request_id(db, want.request_id)
        assert any(same_row(got, want) for got in found), (want, found)
        assert all(got.request_id == want.request_id for got in found)
    result = await maintenance.check(db, sample_hours=1000)
    assert result.ok, result.mismatches
    assert result.hours_checked > 0
    for since, until in [(None, None), (T0 + 0.5, T0 + DAY + 7.25), (T0 + HOUR, None)]:
        for by in ("team", "key", "model", "provider", "day"):
            fast = await ledger.summarize(db, by=by, since=since, until=until)
            assert fast == await ledger.summarize(db, by=by, since=since, until=until, raw=True)


def write_previous_file(path: Path, rows: list[LedgerRow]) -> None:
    """A state file as the aigw before 0011 left it: its rows and their rollups."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, sql in PREVIOUS:
            if name == "0010_rollups":  # rows first: 0010 backfills their rollups
                cols = [f.name for f in fields(LedgerRow)]
                conn.executemany(
                    f"INSERT INTO ledger ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [astuple(r) for r in rows],
                )
            conn.executescript(sql)
            conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))


async def test_a_file_of_the_previous_schema_converts_exactly(tmp_path: Path) -> None:
    rows = varied_rows(random.Random(3), 600)
    path = tmp_path / "old.db"
    write_previous_file(path, rows)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'ledger'").fetchone() == (
            "table",
        )
        before = conn.execute("SELECT SUM(requests), SUM(cost_nusd) FROM rollup_hour").fetchone()
    db = await open_database(path)
    try:
        await assert_exact(db, rows)
        after = await db.fetchone("SELECT SUM(requests), SUM(cost_nusd) FROM rollup_hour")
        assert after is not None and tuple(after) == before
        # Old ids become bytes (found through the index); new rows append to the same table.
        more = varied_rows(random.Random(4), 200)
        await ledger.append_many(db, more)
        await assert_exact(db, rows + more)
    finally:
        await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'ledger'").fetchone() == (
            "view",
        )


async def test_new_rows_read_back_exactly_in_any_order(tmp_path: Path) -> None:
    rnd = random.Random(5)
    db = await open_database(tmp_path / "state.db", fast_writes=True)
    try:
        written: list[LedgerRow] = []
        for _ in range(20):  # group commits, out of time order, sharing microseconds
            batch = varied_rows(rnd, rnd.randrange(1, 60))
            await ledger.append_many(db, batch)
            written += batch
        await assert_exact(db, written)
    finally:
        await db.close()


async def test_upstream_model_is_stored_once_and_reads_back(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "state.db")
    cases = [
        ("gpt-x", "gpt-x"),  # the same: NULL, read as the model
        ("gpt-x", None),  # no upstream (refused before any attempt): 0
        ("gpt-x", "gpt-x-2025-01-01"),  # a different one: its own id
        (None, None),
        (None, "chosen-by-router"),
    ]
    try:
        written = [
            row(T0 + i, model=m, upstream_model=u, request_id=f"c-{i}")
            for i, (m, u) in enumerate(cases)
        ]
        await ledger.append_many(db, written)
        stored = await db.fetchall("SELECT upstream_model FROM ledger_rows ORDER BY id")
        raw = [r[0] for r in stored]
        assert raw[0] is None and raw[1] == 0 and raw[3] is None
        assert isinstance(raw[2], int) and raw[2] > 0 and isinstance(raw[4], int)
        for want in written:
            (got,) = await ledger.by_request_id(db, want.request_id)
            assert got == want
    finally:
        await db.close()


HOSTILE = [
    "équipe-日本-🚀",
    "x" * 20_000,
    "123",
    "0123",
    "0",
    "1.5",
    "-1",
    "1e3",
    "",
    " ",
    "NULL",
    "null",
    "'; DROP TABLE names; --",
    "a\x00b",
    "\u202eevil",
]


async def test_hostile_names_intern_exactly(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "state.db", fast_writes=True)
    try:
        written = [
            row(
                T0 + i,
                team=name,
                app=name,
                key_id=name,
                model=name,
                provider=name,
                upstream_model=name[::-1],
                endpoint=name or "chat.completions",
                request_id=f"h-{i}",
            )
            for i, name in enumerate(HOSTILE)
        ]
        await ledger.append_many(db, written[:5])
        await ledger.append_many(db, written[5:])
        for want in written:
            (got,) = await ledger.by_request_id(db, want.request_id)
            assert got == want
            assert type(got.team) is str
        report = await ledger.summarize(db, by="team", since=None, until=None)
        assert sorted(r.name for r in report) == sorted(HOSTILE)
        assert all(r.requests == 1 for r in report)
        # '123' and 123, '0123' and '123': one names row each, none confused.
        names = [r[0] for r in await db.fetchall("SELECT name FROM names")]
        assert len(names) == len(set(names))
        assert all(type(n) is str for n in names)
    finally:
        await db.close()
    # A new process (empty id cache) finds the same ids.
    db = await open_database(tmp_path / "state.db")
    try:
        await ledger.append_many(db, [row(T0 + 99, team="123", request_id="again")])
        report = await ledger.summarize(db, by="team", since=None, until=None)
        assert next(r for r in report if r.name == "123").requests == 2
    finally:
        await db.close()


async def test_by_request_id_finds_every_kind_of_id(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "state.db")
    try:
        minted = new_request_id(T0 + 10.25)
        lookalike = "req_" + "0" * 13 + "a" * 11  # a client id shaped like ours, wrong time
        written = [
            row(T0 + 10.25, request_id=minted),
            row(T0 + 20, request_id=lookalike),
            row(T0 + 30, request_id="trace-abc.1:2_3"),
            row(T0 + 40, request_id="trace-abc.1:2_3", status=500),  # a reused id
        ]
        await ledger.append_many(db, written)
        kinds = [r[0] for r in await db.fetchall("SELECT typeof(request_id) FROM ledger_rows")]
        # Only the minted id is its random part (an integer); the others are their bytes.
        assert kinds == ["integer", "blob", "blob", "blob"]
        assert await ledger.by_request_id(db, minted) == [written[0]]
        assert await ledger.by_request_id(db, lookalike) == [written[1]]
        assert await ledger.by_request_id(db, "trace-abc.1:2_3") == written[2:]
        assert await ledger.by_request_id(db, minted.upper()) == []
        assert await ledger.by_request_id(db, "req_" + "f" * 24) == []
        assert await ledger.request_ids(db) == {minted, lookalike, "trace-abc.1:2_3"}
        # Both lookups use the table's order or the index, never a scan of every row.
        plans = [
            " ".join(str(r[3]) for r in await db.fetchall(f"EXPLAIN QUERY PLAN {sql}", p))
            for sql, p in [
                (
                    "SELECT id FROM ledger_rows l WHERE l.id BETWEEN ? AND ? AND l.request_id = ?",
                    (1, 2, b"x"),
                ),
                (
                    "SELECT id FROM ledger_rows l WHERE l.request_id = ? "
                    "AND typeof(l.request_id) <> 'integer'",
                    (b"x",),
                ),
            ]
        ]
        assert "INTEGER PRIMARY KEY" in plans[0]
        assert "ledger_rows_request_id" in plans[1]
    finally:
        await db.close()


def test_minted_ids_carry_their_time() -> None:
    ts = T0 + 0.123456
    rid = new_request_id(ts)
    assert len(rid) == 28 and int(rid[4:17], 16) == round(ts * 1_000_000)
    assert new_request_id(ts) != rid  # 44 random bits after the time


@pytest.mark.parametrize("fast", [False, True])
async def test_calls_sharing_a_microsecond_across_commits(tmp_path: Path, fast: bool) -> None:
    db = await open_database(tmp_path / "state.db", fast_writes=fast)
    try:
        edge = math.nextafter(float(T0 + HOUR), 0)  # the last microsecond of an hour
        written = []
        for _ in range(4):
            batch = [row(ts, request_id=new_request_id(ts)) for ts in (T0 + 5.0, edge, edge)]
            await ledger.append_many(db, batch)
            written += batch
        await assert_exact(db, written)
        ids = sorted(r[0] for r in await db.fetchall("SELECT id FROM ledger_rows"))
        assert ids[:4] == [(T0 + 5) * 1_000_000 + k for k in range(4)]
    finally:
        await db.close()


def test_ledger_row_fields_all_have_a_column() -> None:
    """A field added to LedgerRow needs a column in ledger_rows and the view."""
    view = MIGRATIONS[[m[0] for m in MIGRATIONS].index("0014_ledger_text_ids")][1]
    for f in dataclasses.fields(LedgerRow):
        assert f"AS {f.name}" in view, f.name


async def test_a_bad_row_fails_its_commit_after_a_taken_microsecond(tmp_path: Path) -> None:
    """Only a taken microsecond moves a row: any other constraint fails the commit."""
    db = await open_database(tmp_path / "state.db")
    try:
        await ledger.append_many(db, [row(T0 + 1, request_id="first")])
        bad = row(T0 + 2, request_id="bad", status=None)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            await ledger.append_many(db, [row(T0 + 1, request_id="second"), bad])
        assert await ledger.request_ids(db) == {"first"}  # the whole group rolled back
    finally:
        await db.close()


@pytest.mark.sqlite_only("the compact ledger_rows table of the state file")
async def test_served_calls_are_stored_compact_and_found_by_their_id(
    gateway: RunningGateway,
) -> None:
    """Through the server: the minted id is stored as its random part, a client's id as
    its bytes; both are found; the model stored once when the upstream name agrees."""
    key = await gateway.key(team="équipe-1", app="123")
    plain = gateway.openai(key)
    traced = gateway.openai(key, default_headers={"x-request-id": "trace-1.2:3"})
    try:
        minted = (
            await plain.chat.completions.with_raw_response.create(model="fast", messages=HI)
        ).headers["x-request-id"]
        await traced.chat.completions.create(model="fast", messages=HI)
    finally:
        await plain.close()
        await traced.close()
    db = gateway.gw.db
    stored = await db.fetchall(
        "SELECT typeof(request_id), upstream_model, team FROM ledger_rows ORDER BY id"
    )
    assert [r[0] for r in stored] == ["integer", "blob"]
    (first,) = await ledger.by_request_id(db, minted)
    (second,) = await ledger.by_request_id(db, "trace-1.2:3")
    assert first.team == second.team == "équipe-1" and first.app == "123"
    assert first.model == "fast" and first.status == 200 and first.cost_nusd
    # The upstream model differs from the requested alias here: stored as its own id.
    assert first.upstream_model is not None and first.upstream_model != "fast"
    assert stored[0][1] is not None and stored[0][1] > 0


async def test_numeric_looking_ids_read_back_byte_identical(tmp_path: Path) -> None:
    """Client and upstream ids that look like numbers are kept as written, not as the
    numbers SQLite's NUMERIC affinity (the columns' declared ANY) would make them."""
    db = await open_database(tmp_path / "state.db")
    try:
        written = [
            row(T0 + i, request_id=rid, upstream_request_id=rid)
            for i, rid in enumerate([*NUMERIC_LOOKING, "\x01x", "req_00", "req_3132"])
        ]
        await ledger.append_many(db, written)
        assert await all_rows(db) == written
        for want in written:
            assert await ledger.by_request_id(db, want.request_id) == [want]
        assert await ledger.by_request_id(db, "7") == []
        assert await ledger.by_request_id(db, "1000") == []
        assert await ledger.request_ids(db) == {r.request_id for r in written}
        kinds = await db.fetchall(
            "SELECT typeof(request_id), typeof(upstream_request_id) FROM ledger_rows ORDER BY id"
        )
        extra = len(written) - len(NUMERIC_LOOKING)
        assert [tuple(k) for k in kinds] == [("blob", "text")] * (len(NUMERIC_LOOKING) + 1) + [
            ("blob", "blob")
        ] * (extra - 1)
    finally:
        await db.close()


async def test_text_ids_stored_before_0014_convert(tmp_path: Path) -> None:
    """A file written by 0011-0013: its text ids become bytes (found through the index),
    its upstream ids read back the same; ids already numbers stay what they read as."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for fname, (nargs, fn) in SQL_FUNCTIONS.items():
            conn.create_function(fname, nargs, fn, deterministic=True)
        for name, sql in MIGRATIONS:
            if name >= "0014":
                break
            conn.executescript(sql)
            conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
        conn.execute("INSERT INTO names (id, name) VALUES (1, 'chat.completions')")
        old = [
            # (request_id, upstream_request_id) as the bug stored them
            ("trace-1", "upstream-1"),
            ("x 7", None),
            ("007", "012"),  # already numbers: 7, 12
            ("1e3", "1e3"),  # already numbers: 1000 (integer)
            ("1.5", "\x01odd"),  # 1.5 real; an upstream id starting with the marker
            (7, bytes.fromhex("abcd")),  # a gateway id's random part; req_ bytes
        ]
        conn.executemany(
            "INSERT INTO ledger_rows (id, request_id, endpoint, status, flags, prompt_tokens, "
            "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, "
            "latency_ms, saved_nusd, upstream_request_id) "
            "VALUES (?, ?, 1, 200, 16, 0, 0, 0, 0, 0, 1, 0, ?)",
            [(T0 * 1_000_000 + i, r, u) for i, (r, u) in enumerate(old)],
        )
        assert [r[0] for r in conn.execute("SELECT typeof(request_id) FROM ledger_rows")] == [
            "text",
            "text",
            "integer",
            "integer",
            "real",
            "integer",
        ]
    db = await open_database(path)
    try:
        got = await db.fetchall(
            "SELECT typeof(l.request_id), v.request_id, v.upstream_request_id "
            "FROM ledger_rows l JOIN ledger v ON v.id = l.id ORDER BY l.id"
        )
        assert [tuple(r) for r in got] == [
            ("blob", "trace-1", "upstream-1"),
            ("blob", "x 7", None),
            ("integer", f"req_{T0 * 1_000_000 + 2:013x}{7:011x}", "12"),
            ("integer", f"req_{T0 * 1_000_000 + 3:013x}{1000:011x}", "1000"),
            ("blob", "1.5", "\x01odd"),
            ("integer", f"req_{T0 * 1_000_000 + 5:013x}{7:011x}", "req_abcd"),
        ]
        (found,) = await ledger.by_request_id(db, "trace-1")
        assert found.upstream_request_id == "upstream-1"
        assert len(await ledger.by_request_id(db, "x 7")) == 1
        assert len(await ledger.by_request_id(db, "1.5")) == 1
    finally:
        await db.close()


async def test_served_numeric_looking_ids_are_kept(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    """Through the server: each client x-request-id and upstream id that looks like a
    number reads back byte-identical and the call is found by it."""
    key = await gateway.key(team="a")
    # The ones a client may send (x-request-id: 1-128 of [A-Za-z0-9._:-]).
    sent = [rid for rid in NUMERIC_LOOKING if re.fullmatch(r"[\w.:-]{1,128}", rid, re.ASCII)]
    assert len(sent) == 8
    fake_openai.then(*[Reply(request_id=f"{rid}") for rid in sent])
    for rid in sent:
        client = gateway.openai(key, default_headers={"x-request-id": rid})
        try:
            raw = await client.chat.completions.with_raw_response.create(model="fast", messages=HI)
        finally:
            await client.close()
        assert raw.headers["x-request-id"] == rid
    for rid in sent:
        (found,) = await gateway.gw.store.reports.by_request_id(rid)
        assert found.request_id == rid and found.upstream_request_id == rid
    assert await gateway.request_ids() == set(sent)
