"""Binding values to SQLite statements cheaply: the group commit's hot path.

sqlite3 binds an exact int, float, str or bytearray as it is, but first looks any
other value up in its adapter registry; on a miss it also asks the value's protocol
and the value itself (``__adapt__``, ``__conform__``: an AttributeError raised and
cleared), about 3,500 instructions per value, and a group commit binds a dozen None
per call. So:

- identity adapters for None and bytes make that lookup a dict hit and a C call that
  returns the value unchanged (about 1,200 instructions; what is stored does not
  change: None binds NULL, bytes a BLOB);
- the ledger and audit encoders bind :data:`NULL` (a float NaN, which SQLite stores
  as NULL) for None, and bytearray for bytes, skipping the lookup altogether;
- many rows go in one multi-row INSERT (cheaper per row than ``executemany``), in
  statements of few sizes (:func:`row_chunks`) whose SQL is built once
  (:func:`multi_row`).

tests/test_sqlite_binds.py checks that each of these stores what a plain bind does.
Importing this module registers the adapters (process-wide, as sqlite3's registry
is; registering int, float, str or bytearray would slow every bind instead).
"""

from __future__ import annotations

import functools
import math
import sqlite3

_NOTHING: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)  # .get(None) is None
sqlite3.register_adapter(bytes, bytes.__bytes__)  # an exact bytes object: itself

# Binds as NULL: SQLite has no NaN (sqlite3_bind_double stores NULL for it), and an
# exact float needs no adapter. For values that are usually None; read back as None.
NULL = math.nan


def _max_variables() -> int:
    """Bound variables one statement may hold: SQLITE_MAX_VARIABLE_NUMBER, 32766 since
    SQLite 3.32 and 999 before (a build may choose another), as this library reports it."""
    conn = sqlite3.connect(":memory:")
    try:
        return min(32766, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    finally:
        conn.close()


MAX_VARIABLES = _max_variables()
MAX_ROWS = 256  # rows in one multi-row statement (a power of two)
EXACT_ROWS = 16  # a batch (or what is left of it) this small is one statement


def row_sql(width: int) -> str:
    """One row of ``width`` placeholders: ``(?, ?, ...)``."""
    return "(" + ", ".join("?" * width) + ")"


def row_chunks(n: int, width: int) -> list[tuple[int, int]]:
    """Split ``n`` rows of ``width`` values into (start, stop) ranges, one multi-row
    statement each, none over :data:`MAX_ROWS` rows or :data:`MAX_VARIABLES` values.

    While more than :data:`EXACT_ROWS` rows are left, the next range is the largest
    power of two that fits; the rest is one range. So statements come in few sizes
    (at most ``EXACT_ROWS`` + 5 per table: each is prepared once and then found in
    sqlite3's statement cache, 128 per connection, where a size per batch size would
    evict one another under load) and a batch takes few statements (each has a fixed
    cost, about 20,000 instructions in a group commit)."""
    most = MAX_ROWS
    while most > 1 and most * width > MAX_VARIABLES:
        most //= 2
    exact = min(EXACT_ROWS, most)
    chunks: list[tuple[int, int]] = []
    start = 0
    while n - start > exact:
        size = min(most, 1 << ((n - start).bit_length() - 1))
        chunks.append((start, start + size))
        start += size
    if start < n:
        chunks.append((start, n))
    return chunks


@functools.cache
def multi_row(head: str, width: int, rows: int, tail: str = "") -> str:
    """``head`` (``INSERT INTO t (a, b) VALUES``), ``rows`` rows of ``width``
    placeholders, then ``tail`` (``ON CONFLICT ...``). Cached: the same string object
    for the same statement, so sqlite3's statement cache finds it without hashing a new
    string."""
    return f"{head} {', '.join([row_sql(width)] * rows)}{tail}"
