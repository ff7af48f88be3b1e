"""How the group commit binds values (aigw/store/sqlite/binds.py): multi-row statements
in few sizes within SQLite's variable limit, NaN for NULL, identity adapters for None
and bytes; each stores exactly what plain single-row binds of None and bytes store."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigw.audit import GENESIS, Sealer, call_event, verify
from aigw.model import AuditEvent, LedgerRow
from aigw.store import open_database
from aigw.store.sqlite import audit_codec, binds, ledger
from aigw.store.sqlite.audit import append_audit, chain
from aigw.store.sqlite.audit import head as head_of
from aigw.store.sqlite.binds import (
    EXACT_ROWS,
    MAX_ROWS,
    MAX_VARIABLES,
    NULL,
    multi_row,
    row_chunks,
    row_sql,
)
from aigw.store.sqlite.db import Database
from aigw.store.sqlite.rollups import name_ids
from tests.test_ledger_compact import all_rows, same_row, varied_rows

pytestmark = pytest.mark.sqlite_only("how values are bound into SQLite statements")

# Batch sizes at the edges: one row, powers of two and one past them, EXACT_ROWS, more
# than one statement of the largest size.
SIZES = sorted(
    {1, 2, 3, EXACT_ROWS - 1, EXACT_ROWS, EXACT_ROWS + 1}
    | {2**k + d for k in range(1, 10) for d in (-1, 0, 1)}
    | {2 * MAX_ROWS + 3}
)


def _most(width: int) -> int:
    most = MAX_ROWS
    while most > 1 and most * width > MAX_VARIABLES:
        most //= 2
    return most


@pytest.mark.parametrize("width", [1, 22, 25, 30, 500])
def test_chunks_cover_every_row_once_in_few_sizes(width: int) -> None:
    most = _most(width)
    sizes: set[int] = set()
    for n in [0, *SIZES, *range(1, 300)]:
        chunks = row_chunks(n, width)
        assert [i for a, b in chunks for i in range(a, b)] == list(range(n))
        for a, b in chunks:
            assert 1 <= b - a <= most and (b - a) * width <= MAX_VARIABLES
            sizes.add(b - a)
        # Every statement but the last is a power of two; the last one too unless at
        # most EXACT_ROWS rows were left for it.
        for a, b in chunks[:-1]:
            assert (b - a) & (b - a - 1) == 0
        if chunks:
            a, b = chunks[-1]
            assert (b - a) & (b - a - 1) == 0 or b - a <= EXACT_ROWS
        # A batch takes one statement per bit above EXACT_ROWS, plus one.
        if n <= min(EXACT_ROWS, most):
            assert len(chunks) == (n > 0)
        elif n <= most:
            assert len(chunks) <= bin(n).count("1")
    # Few sizes: statements are prepared once each and stay in sqlite3's cache.
    assert len(sizes) <= EXACT_ROWS + MAX_ROWS.bit_length()


def test_chunks_at_the_edges() -> None:
    assert row_chunks(0, 22) == []
    assert row_chunks(1, 22) == [(0, 1)]
    assert row_chunks(EXACT_ROWS, 22) == [(0, EXACT_ROWS)]
    assert row_chunks(EXACT_ROWS + 1, 22) == [(0, EXACT_ROWS), (EXACT_ROWS, EXACT_ROWS + 1)]
    assert row_chunks(32, 22) == [(0, 32)]
    assert row_chunks(33, 22) == [(0, 32), (32, 33)]
    assert row_chunks(MAX_ROWS, 22) == [(0, MAX_ROWS)]
    assert row_chunks(MAX_ROWS + 1, 22) == [(0, MAX_ROWS), (MAX_ROWS, MAX_ROWS + 1)]
    assert row_chunks(2 * MAX_ROWS + 40, 22) == [
        (0, MAX_ROWS),
        (MAX_ROWS, 2 * MAX_ROWS),
        (2 * MAX_ROWS, 2 * MAX_ROWS + 32),
        (2 * MAX_ROWS + 32, 2 * MAX_ROWS + 40),
    ]


def test_chunks_stay_within_an_old_sqlites_999_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binds, "MAX_VARIABLES", 999)
    for width in (22, 25, 30, 500, 999, 1000):
        for n in SIZES:
            chunks = row_chunks(n, width)
            assert sum(b - a for a, b in chunks) == n
            assert all((b - a) * width <= 999 or b - a == 1 for a, b in chunks)
    assert max(b - a for a, b in row_chunks(300, 30)) == 32  # 32 x 30 = 960 <= 999


def test_the_largest_statement_fits_the_limit_and_one_more_row_would_not() -> None:
    """A table as wide as SQLite allows statements of 64 rows of (32766 variables); the
    chunks use exactly that, and 65 rows in one statement are refused."""
    width = 500
    most = _most(width)
    conn = sqlite3.connect(":memory:")
    try:
        cols = ", ".join(f"c{i}" for i in range(width))
        conn.execute(f"CREATE TABLE t ({cols})")
        head = f"INSERT INTO t ({cols}) VALUES"
        n = most + 1
        values = list(range(n * width))
        for a, b in row_chunks(n, width):
            conn.execute(multi_row(head, width, b - a), values[a * width : b * width])
        assert conn.execute("SELECT COUNT(*), SUM(c0), SUM(c499) FROM t").fetchone() == (
            n,
            sum(values[::width]),
            sum(values[width - 1 :: width]),
        )
        if (
            (most + 1) * width
            > MAX_VARIABLES
            == conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        ):
            with pytest.raises(sqlite3.OperationalError, match="too many SQL variables"):
                conn.execute(multi_row(head, width, n), values)
    finally:
        conn.close()


def test_multi_row_sql_is_built_once() -> None:
    sql = multi_row("INSERT INTO t (a, b) VALUES", 2, 3, " ON CONFLICT DO NOTHING")
    assert sql == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT DO NOTHING"
    assert multi_row("INSERT INTO t (a, b) VALUES", 2, 3, " ON CONFLICT DO NOTHING") is sql
    assert row_sql(3) == "(?, ?, ?)"


@pytest.fixture
def plain_binds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """sqlite3 as it binds with no adapter registered for None and bytes."""
    for t in (type(None), bytes):
        key: tuple[type[Any], type[Any]] = (t, sqlite3.PrepareProtocol)
        monkeypatch.delitem(sqlite3.adapters, key)
    yield


def test_the_adapters_are_registered_and_return_the_value_itself() -> None:
    for value in (None, b"", b"\x00\xff raw"):
        adapt = sqlite3.adapters[(type(value), sqlite3.PrepareProtocol)]
        assert adapt(value) is value


AFFINITIES = ("ANY", "TEXT", "INTEGER", "REAL", "BLOB", "NUMERIC", "")
VALUES: list[object] = [
    None,
    NULL,
    b"",
    b"\x00\xff raw",
    b"12",
    bytearray(b"12"),
    bytearray(),
    "",
    "007",
    "NaN",
    0,
    -(2**63),
    1.5,
    float("inf"),
]


def _stored(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    cols = ", ".join(f"typeof(c{i}), c{i}" for i in range(len(AFFINITIES)))
    return conn.execute(f"SELECT {cols} FROM t ORDER BY rowid").fetchall()


def _table(conn: sqlite3.Connection) -> None:
    cols = ", ".join(f"c{i} {a}" for i, a in enumerate(AFFINITIES))
    conn.execute(f"CREATE TABLE t ({cols})")


def test_none_nan_and_bytes_store_as_plain_binds_do(plain_binds: None) -> None:
    """None and NaN store NULL, bytes and bytearray the same BLOB, in a column of any
    affinity, as they do with no adapter (the reference, bound one row at a time)."""
    width = len(AFFINITIES)
    plain = sqlite3.connect(":memory:")
    _table(plain)
    plain_rows = [
        [None if isinstance(v, float) and math.isnan(v) else v for _ in AFFINITIES] for v in VALUES
    ]
    plain.executemany(f"INSERT INTO t VALUES {row_sql(width)}", plain_rows)
    want = _stored(plain)
    assert want[0] == want[1] == (("null", None) * width)
    plain.close()

    _adapters(True)
    conn = sqlite3.connect(":memory:")
    _table(conn)
    params = [v for v in VALUES for _ in AFFINITIES]
    for a, b in row_chunks(len(VALUES), width):
        conn.execute(multi_row("INSERT INTO t VALUES", width, b - a), params[a * width : b * width])
    assert _stored(conn) == want
    conn.close()


def _plain(values: list[object]) -> list[object]:
    """What the encoders bind, as plain values: None for NaN, bytes for bytearray."""
    return [
        None
        if isinstance(v, float) and math.isnan(v)
        else bytes(v)
        if isinstance(v, bytearray)
        else v
        for v in values
    ]


def _events(rows: list[LedgerRow], rnd: random.Random) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    for r in rows:
        if rnd.random() < 0.2:
            out.append(
                AuditEvent(
                    ts=r.ts,
                    kind="admin",
                    actor="ops@host",
                    action="keys.create",
                    target=r.key_id,
                    before=None,
                    after='{"team": "a"}',
                )
            )
        else:
            out.append(call_event(r, scrub=rnd.choice([None, '{"email": 2}'])))
    return out


async def _dump(db: Database, table: str, order: str) -> list[tuple[object, ...]]:
    cols = [r[1] for r in await db.fetchall(f"PRAGMA table_info({table})")]
    sel = ", ".join(f"typeof({c}), {c}" for c in cols)
    return [tuple(r) for r in await db.fetchall(f"SELECT {sel} FROM {table} ORDER BY {order}")]


def _order(r: LedgerRow) -> tuple[str, int, int]:
    return (r.request_id, r.prompt_tokens, r.completion_tokens)


def _adapters(on: bool) -> None:
    for t, adapt in ((type(None), binds._NOTHING.get), (bytes, bytes.__bytes__)):
        if on:
            sqlite3.register_adapter(t, adapt)  # type: ignore[arg-type]
        else:
            sqlite3.adapters.pop((t, sqlite3.PrepareProtocol), None)


async def test_ledger_and_audit_rows_are_what_executemany_stored(
    tmp_path: Path, plain_binds: None
) -> None:
    """Batches of every edge size, written as the group commit writes them (multi-row
    statements, NaN, bytearray, the adapters) and, into another file, one plain row at
    a time with executemany and no adapters: the stored rows are identical."""
    rnd = random.Random(7)
    fast = await open_database(tmp_path / "fast.db", fast_writes=True)
    ref = await open_database(tmp_path / "ref.db")
    try:
        sealer = Sealer()
        head, seq = GENESIS, 0
        written: list[LedgerRow] = []
        for n in SIZES:
            rows = varied_rows(rnd, n)
            written += rows
            events = _events(rows, rnd)
            wanted = ledger.row_names(rows) | audit_codec.event_names(events)
            got_ids: list[int] = []

            def write(
                conn: sqlite3.Connection,
                rows: list[LedgerRow] = rows,
                events: list[AuditEvent] = events,
                wanted: set[str] = wanted,
                got_ids: list[int] = got_ids,
            ) -> None:
                names = name_ids(conn, sorted(wanted))
                got_ids.extend(ledger.insert_rows(conn, rows, names))
                append_audit(conn, events, sealer, (), names)

            _adapters(True)
            await fast.batch(write)
            assert [e.seq for e in events] == list(range(seq + 1, seq + n + 1))
            assert events[0].prev_hash == head
            seq, head = events[-1].seq, events[-1].hash

            # The reference: the same names ids, then one plain row per statement.
            names = {
                r["name"]: r["id"]
                for r in await fast.fetchall(
                    f"SELECT id, name FROM names WHERE name IN ({', '.join('?' * len(wanted))})",
                    sorted(wanted),
                )
            }
            ledger_rows = [
                _plain(list(ledger._encode(r, i, names)))
                for r, i in zip(rows, got_ids, strict=True)
            ]
            params: list[object] = []
            audit_codec.encode_into(params, events, names, None)
            audit_rows = [
                _plain(params[i : i + audit_codec.WIDTH])
                for i in range(0, len(params), audit_codec.WIDTH)
            ]
            head_row = (seq, head)

            def reference(
                conn: sqlite3.Connection,
                names: dict[str, int] = names,
                ledger_rows: list[list[object]] = ledger_rows,
                audit_rows: list[list[object]] = audit_rows,
                head_row: tuple[int, str] = head_row,
            ) -> None:
                conn.executemany(
                    "INSERT OR IGNORE INTO names (id, name) VALUES (?, ?)",
                    [(i, name) for name, i in names.items()],
                )
                conn.executemany(
                    f"INSERT INTO ledger_rows ({ledger._COLUMNS}) VALUES " + row_sql(ledger._WIDTH),
                    ledger_rows,
                )
                conn.executemany(
                    f"INSERT INTO audit_events ({audit_codec.COLUMNS}) VALUES "
                    + row_sql(audit_codec.WIDTH),
                    audit_rows,
                )
                conn.execute(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    head_row,
                )

            _adapters(False)
            await ref.batch(reference)
        for table, order in (
            ("ledger_rows", "id"),
            ("audit_events", "seq"),
            ("names", "id"),
            ("audit_head", "id"),
        ):
            assert await _dump(fast, table, order) == await _dump(ref, table, order), table
        # What was written reads back: the rows, and a chain that verifies.
        written.sort(key=_order)
        got = sorted(await all_rows(fast), key=_order)
        assert len(got) == len(written)
        assert all(same_row(g, w) for g, w in zip(got, written, strict=True))
        verdict = verify([e async for e in chain(fast)], await head_of(fast), None)
        assert verdict.ok and verdict.checked == seq
    finally:
        await fast.close()
        await ref.close()
