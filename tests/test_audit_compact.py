"""The compact audit trail (0013_audit_compact): old events convert with their hashes
and exports unchanged, every tampering `aigw audit verify` caught before is caught
after, names of any shape intern, and an event is found by its request id."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import astuple, replace
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from aigw import paths
from aigw.audit import COLUMNS, GENESIS, KEYED, PLAIN, Sealer, Verdict, digest, event_dict, verify
from aigw.cli import app as cli
from aigw.model import AuditEvent, LedgerRow
from aigw.pipeline.context import new_request_id
from aigw.store import open_database
from aigw.store.sqlite import audit as audit_store
from aigw.store.sqlite import ledger
from aigw.store.sqlite.audit_codec import ALGS
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.migrations import MIGRATIONS

T0 = 1_764_547_200  # 2025-12-01 00:00 UTC
KEY = b"a-long-secret-audit-key-1234"
PREVIOUS = [m for m in MIGRATIONS if m[0] < "0013"]  # the schema before
HOSTILE = ["", " ", "123", "0123", "1e3", "x'00", "'; DROP TABLE names; --", "a\x00b", "\u202e"]


def varied_events(rnd: random.Random, n: int) -> list[AuditEvent]:
    """Proxy and admin events in every shape: minted, lookalike, client and no request
    ids; names equal, different, missing and hostile; errors, scrub counts, JSON."""
    out = []
    for i in range(n):
        ts = T0 + i * 0.731 + rnd.random() * 1e-3
        if rnd.random() < 0.15:
            out.append(
                AuditEvent(
                    ts=ts,
                    kind="admin",
                    actor=rnd.choice(["alice@build-01", "bob@x"]),
                    action=rnd.choice(["keys.create", "teams.update"]),
                    target=rnd.choice([*HOSTILE, "team-a"]),
                    before=rnd.choice([None, '{"rpm":5}']),
                    after='{"rpm":10,"name":"\\u202e"}',
                )
            )
            continue
        model = rnd.choice(["gpt-x", "claude-y", None, *HOSTILE])
        rid = rnd.choice(
            [
                new_request_id(ts),  # the gateway's: stored as its random bits
                new_request_id(ts + 1),  # minted at another time: text
                "req_" + "0" * 13 + "a" * 11,  # a lookalike
                "trace-abc.1:2_3",
                "007",  # digits: stay text
                None,
            ]
        )
        ok = rnd.random() < 0.8
        out.append(
            AuditEvent(
                ts=ts,
                kind="proxy",
                request_id=rid,
                key_id=rnd.choice([None, "key_a1", "key_b2"]),
                team=rnd.choice([None, "team-a", *HOSTILE]),
                app=rnd.choice([None, "web"]),
                endpoint=rnd.choice(["chat.completions", "responses", None]),
                model=model,
                provider=rnd.choice([None, "openai", "anthropic"]),
                upstream_model=rnd.choice([model, model, None, "gpt-x-2025", "\u202e"]),
                status=rnd.choice([200, 200, 401, 429, 502]),
                prompt_tokens=rnd.randrange(5000) if ok else None,
                completion_tokens=rnd.randrange(900) if ok else None,
                cost_nusd=rnd.choice([None, 0, rnd.randrange(10**9)]),
                error=None if ok else "upstream answered 502",
                scrub=rnd.choice([None, '{"email":2}']),
            )
        )
    return out


def old_insert(conn: sqlite3.Connection, events: list[AuditEvent], key: bytes | None) -> None:
    """What aigw before 0013 wrote: the events sealed after the head, every column text."""
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    seq, prev = row if row is not None else (0, GENESIS)
    seq, prev = Sealer(lambda: key).seal(events, seq, prev)
    conn.executemany(
        f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [astuple(e) for e in events],
    )
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (seq, prev),
    )


def write_previous_file(path: Path, rnd: random.Random, n: int = 300) -> None:
    """A state file as the aigw before 0013 left it: plain events, then keyed ones."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, sql in PREVIOUS:
            conn.executescript(sql)
            conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
        events = varied_events(rnd, n)
        old_insert(conn, events[: n // 3], None)
        old_insert(conn, events[n // 3 :], KEY)


def old_state(path: Path) -> tuple[Verdict, list[bytes]]:
    """What the aigw before 0013 said of a file: its verdict and its JSON export lines."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = [AuditEvent(**dict(r)) for r in conn.execute("SELECT * FROM audit ORDER BY seq")]
        head = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
    return verify(rows, tuple(head) if head else None, KEY), [
        orjson.dumps(event_dict(e)) for e in rows
    ]


async def new_state(db: Database) -> tuple[Verdict, list[bytes]]:
    events = [e async for e in audit_store.chain(db)]
    return verify(events, await audit_store.head(db), KEY), [
        orjson.dumps(event_dict(e)) for e in events
    ]


async def test_old_events_convert_verify_and_export_identically(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_previous_file(path, random.Random(7))
    verdict, export = old_state(path)
    assert verdict.ok and verdict.checked == 300 and verdict.keyed == 200
    db = await open_database(path)
    try:
        assert await new_state(db) == (verdict, export)
        stored = await db.fetchall(
            "SELECT typeof(kind), typeof(alg), prev_hash, length(hash) FROM audit_events"
        )
        assert {tuple(r) for r in stored} == {("integer", "integer", None, 32)}
        kinds = {r[0] for r in await db.fetchall("SELECT typeof(request_id) FROM audit_events")}
        assert kinds == {"integer", "text", "null"}
        # New events chain on after the converted ones.
        more = varied_events(random.Random(8), 50)
        for e in more:
            e.ts += 10**6
        db.sealer = Sealer(lambda: KEY)
        await ledger.append_many(db, more[:20])
        await audit_store.append(db, more[20:])
        verdict2, export2 = await new_state(db)
        assert verdict2.ok and verdict2.checked == 350 and export2[:300] == export
        assert export2[300:] == [orjson.dumps(event_dict(e)) for e in more]
    finally:
        await db.close()


def test_cli_export_after_conversion_is_the_old_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGW_AUDIT_KEY", KEY.decode())
    state = paths.resolve().state_file
    state.parent.mkdir(parents=True, exist_ok=True)
    write_previous_file(state, random.Random(9), 120)
    _, export = old_state(state)
    out = tmp_path / "export.jsonl"
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"".join(line + b"\n" for line in export)
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 0 and "120 events verified" in " ".join(result.output.split())


# -- tampering: caught the same before and after the conversion --------------------------


def _swap(conn: sqlite3.Connection, table: str, a: int, b: int) -> None:
    conn.execute(f"UPDATE {table} SET seq = -1 WHERE seq = ?", (a,))
    conn.execute(f"UPDATE {table} SET seq = ? WHERE seq = ?", (a, b))
    conn.execute(f"UPDATE {table} SET seq = ? WHERE seq = -1", (b,))


def _rechain_plain(conn: sqlite3.Connection, start: int, old: bool) -> None:
    """A downgrade: event ``start`` on rewritten as plain SHA-256 (no key needed), the
    head moved."""
    conn.row_factory = sqlite3.Row
    rows = [AuditEvent(**dict(r)) for r in conn.execute("SELECT * FROM audit ORDER BY seq")]
    prev = rows[start - 2].hash
    for e in rows[start - 1 :]:
        e.alg, e.prev_hash = PLAIN, prev
        e.hash = prev = digest(PLAIN, None, prev, e)
        if old:
            conn.execute(
                "UPDATE audit SET alg = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (e.alg, e.prev_hash, e.hash, e.seq),
            )
        else:
            conn.execute(
                "UPDATE audit_events SET alg = ?, hash = ? WHERE seq = ?",
                (ALGS[PLAIN], bytes.fromhex(e.hash), e.seq),
            )
    conn.execute("UPDATE audit_head SET hash = ?", (prev,))


Tamper = Callable[[sqlite3.Connection], object]
# (name, tampering of the old table, the same of the compact one, what verify says)
TAMPERINGS: list[tuple[str, Tamper, Tamper, str]] = [
    (
        "edit a field",
        lambda c: c.execute("UPDATE audit SET status = 201 WHERE seq = 150"),
        lambda c: c.execute("UPDATE audit_events SET status = 201 WHERE seq = 150"),
        "was edited",
    ),
    (
        "edit a name",
        lambda c: c.execute("UPDATE audit SET team = 'team-z' WHERE seq = 151"),
        lambda c: c.execute(
            "UPDATE audit_events SET team = IFNULL(team, 0) % (SELECT MAX(id) FROM names) + 1 "
            "WHERE seq = 151"
        ),
        "was edited",
    ),
    (
        "edit a hash",
        lambda c: c.execute("UPDATE audit SET hash = 'nope' WHERE seq = 40"),
        lambda c: c.execute("UPDATE audit_events SET hash = zeroblob(32) WHERE seq = 40"),
        "was edited",
    ),
    (
        "edit a link",
        lambda c: c.execute(f"UPDATE audit SET prev_hash = '{'1' * 64}' WHERE seq = 41"),
        lambda c: c.execute("UPDATE audit_events SET prev_hash = zeroblob(32) WHERE seq = 41"),
        "does not follow event 40",
    ),
    (
        "delete an event",
        lambda c: c.execute("DELETE FROM audit WHERE seq = 77"),
        lambda c: c.execute("DELETE FROM audit_events WHERE seq = 77"),
        "event 77 is missing",
    ),
    (
        "swap two events",
        lambda c: _swap(c, "audit", 200, 201),
        lambda c: _swap(c, "audit_events", 200, 201),
        "event 200 ",
    ),
    (
        "delete the last events",
        lambda c: c.execute("DELETE FROM audit WHERE seq > 297"),
        lambda c: c.execute("DELETE FROM audit_events WHERE seq > 297"),
        "events 298..300 are missing",
    ),
    (
        "downgrade keyed events to plain",
        lambda c: _rechain_plain(c, 250, old=True),
        lambda c: _rechain_plain(c, 250, old=False),
        "not HMAC-sealed after keyed events",
    ),
]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(
    ("name", "old", "new", "problem"), TAMPERINGS, ids=[t[0] for t in TAMPERINGS]
)
async def test_tampering_is_caught_after_the_conversion(
    tmp_path: Path,
    when: str,
    name: str,
    old: Tamper,
    new: Tamper,
    problem: str,
) -> None:
    """Tampered before the conversion: the same verdict after it. Tampered after it:
    caught as the old table's tampering was."""
    path = tmp_path / "old.db"
    write_previous_file(path, random.Random(11))
    if when == "before":
        with sqlite3.connect(path) as conn:
            old(conn)
    verdict, _ = old_state(path)
    db = await open_database(path)
    try:
        if when == "after":
            with sqlite3.connect(path) as conn:
                new(conn)
        after, _ = await new_state(db)
    finally:
        await db.close()
    assert not after.ok and problem in (after.problem or ""), after
    if when == "before":
        assert after == verdict


async def test_truncation_with_a_rewritten_head_shows_in_the_head(tmp_path: Path) -> None:
    """As before 0013 (documented): the last events cut and the head set back verify,
    and only the head verify prints differs from the one noted before."""
    path = tmp_path / "old.db"
    write_previous_file(path, random.Random(12))
    db = await open_database(path)
    try:
        noted, _ = await new_state(db)
        with sqlite3.connect(path) as conn:
            (cut,) = conn.execute("SELECT hash FROM audit WHERE seq = 290").fetchone()
            conn.execute("DELETE FROM audit_events WHERE seq > 290")
            conn.execute("UPDATE audit_head SET seq = 290, hash = ?", (cut,))
        now, _ = await new_state(db)
    finally:
        await db.close()
    assert now.ok and (now.head_seq, now.head_hash) == (290, cut)
    assert (noted.head_seq, noted.head_hash) != (now.head_seq, now.head_hash)


async def test_a_head_that_does_not_name_the_last_event_is_kept_explicit(
    tmp_path: Path,
) -> None:
    """When the head was tampered with, the next event's link is stored as written
    (not implied from the event before it), so verify says what it said before 0013."""
    db = await open_database(tmp_path / "state.db")
    try:
        await audit_store.append(db, varied_events(random.Random(1), 5))
        await db.execute(f"UPDATE audit_head SET hash = '{'2' * 64}'")
        await audit_store.append(db, varied_events(random.Random(2), 1))
        stored = await db.fetchone("SELECT prev_hash FROM audit_events WHERE seq = 6")
        assert stored is not None and stored[0] == bytes.fromhex("2" * 64)
        verdict, _ = await new_state(db)
        assert not verdict.ok and verdict.bad_seq == 6
        assert "does not follow event 5" in (verdict.problem or "")
    finally:
        await db.close()


# -- names, request ids ----------------------------------------------------------------


async def test_events_read_back_exactly_and_hostile_names_intern(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "state.db", fast_writes=True)
    try:
        events = varied_events(random.Random(3), 400)
        rows = [
            LedgerRow(
                ts=e.ts,
                request_id=e.request_id or "x",
                key_id=e.key_id,
                team=e.team,
                app=e.app,
                endpoint=e.endpoint or "chat.completions",
                model=e.model,
                provider=e.provider,
                upstream_model=e.upstream_model,
                status=e.status or 200,
                stream=False,
                prompt_tokens=0,
                completion_tokens=0,
                cached_tokens=0,
                cache_write_tokens=0,
                reasoning_tokens=0,
                usage_estimated=False,
                cost_nusd=None,
                latency_ms=1,
                error=None,
            )
            for e in events
            if e.kind == "proxy"
        ]
        written = [replace(e) for e in events]
        await ledger.append_many(db, [*rows[:100], *written[:200]])
        await ledger.append_many(db, [*written[200:], *rows[100:]])
        got = [e async for e in audit_store.chain(db)]
        assert got == written
        for e in got:
            assert all(type(getattr(e, f)) is str for f in ("team", "model") if getattr(e, f))
        names = [r[0] for r in await db.fetchall("SELECT name FROM names")]
        assert len(names) == len(set(names)) and set(HOSTILE) <= set(names)
        verdict, _ = await new_state(db)
        assert verdict.ok and verdict.checked == 400
    finally:
        await db.close()


async def test_by_request_id_finds_every_kind_of_id(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "state.db")
    try:
        minted = new_request_id(T0 + 10.25)
        lookalike = "req_" + "0" * 13 + "a" * 11
        events = [
            AuditEvent(ts=T0 + 10.25, kind="proxy", request_id=minted),
            AuditEvent(ts=T0 + 20, kind="proxy", request_id=lookalike),
            AuditEvent(ts=T0 + 30, kind="proxy", request_id="007"),
            AuditEvent(ts=T0 + 40, kind="proxy", request_id="007", status=500),
            AuditEvent(ts=T0 + 10.25, kind="proxy", request_id=None),
        ]
        await audit_store.append(db, events)
        kinds = [r[0] for r in await db.fetchall("SELECT typeof(request_id) FROM audit_events")]
        assert kinds == ["integer", "text", "text", "text", "null"]
        assert await audit_store.by_request_id(db, minted) == [events[0]]
        assert await audit_store.by_request_id(db, lookalike) == [events[1]]
        assert await audit_store.by_request_id(db, "007") == events[2:4]
        assert await audit_store.by_request_id(db, minted.upper()) == []
        assert await audit_store.by_request_id(db, "req_" + "f" * 24) == []
        plans = [
            " ".join(str(r[3]) for r in await db.fetchall(f"EXPLAIN QUERY PLAN {sql}", p))
            for sql, p in [
                (
                    "SELECT seq FROM audit_events WHERE ts >= ? AND ts <= ? AND request_id = ?",
                    (1.0, 2.0, 3),
                ),
                (
                    "SELECT seq FROM audit_events WHERE request_id = ? "
                    "AND typeof(request_id) = 'text'",
                    ("x",),
                ),
            ]
        ]
        assert "audit_events_ts" in plans[0]
        assert "audit_events_request_id" in plans[1]
    finally:
        await db.close()


def test_audit_event_fields_all_have_a_column() -> None:
    view = MIGRATIONS[[m[0] for m in MIGRATIONS].index("0013_audit_compact")][1]
    for name in COLUMNS:
        assert f" AS {name}," in view or f" AS {name}\n" in view, name
    assert KEYED in ALGS and PLAIN in ALGS


async def test_minted_ids_are_stored_as_their_random_bits_at_any_time(tmp_path: Path) -> None:
    """Ids minted at times on and between microseconds (ties rounded half to even by
    the gateway) are all stored as integers and read back as minted."""
    rnd = random.Random(4)
    times = [
        (T0 * 1_000_000 + k + rnd.choice([0, 0.25, 0.5, 0.75, 0.499])) / 1e6 for k in range(300)
    ]
    events = [AuditEvent(ts=ts, kind="proxy", request_id=new_request_id(ts)) for ts in times]
    db = await open_database(tmp_path / "state.db")
    try:
        await audit_store.append(db, events)
        kinds = {r[0] for r in await db.fetchall("SELECT typeof(request_id) FROM audit_events")}
        assert kinds == {"integer"}
        assert [e async for e in audit_store.chain(db)] == events
        for e in events[:20]:
            assert e.request_id is not None
            assert await audit_store.by_request_id(db, e.request_id) == [e]
    finally:
        await db.close()


async def test_renaming_an_interned_name_is_caught(tmp_path: Path) -> None:
    """Events share names rows: editing one edits every event naming it, and verify
    names the first of them."""
    path = tmp_path / "old.db"
    write_previous_file(path, random.Random(13))
    db = await open_database(path)
    try:
        first = await db.fetchone(
            "SELECT seq, team FROM audit_events WHERE team IS NOT NULL ORDER BY seq LIMIT 1"
        )
        assert first is not None
        name_id = first[1]
        columns = "key_id, team, app, endpoint, model, provider, IFNULL(upstream_model, model)"
        using = await db.fetchone(
            f"SELECT MIN(seq) FROM audit_events WHERE ? IN ({columns})", (name_id,)
        )
        assert using is not None
        await db.execute("UPDATE names SET name = name || '-x' WHERE id = ?", (name_id,))
        verdict, _ = await new_state(db)
    finally:
        await db.close()
    assert not verdict.ok and verdict.bad_seq == using[0]
    assert "was edited" in (verdict.problem or "")
