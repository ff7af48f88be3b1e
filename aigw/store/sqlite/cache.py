"""The response cache's table: answers by key, their sizes for LRU eviction, clears."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from aigw.cache.entry import CacheStats, Entry
from aigw.store.sqlite.db import Database

_COLUMNS = (
    "key, team, endpoint, model, upstream, kind, body, usage, cost_nusd, created, expires, "
    "last_used, size"
)


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        key=row["key"],
        team=row["team"],
        endpoint=row["endpoint"],
        model=row["model"],
        upstream=row["upstream"],
        kind=row["kind"],
        body=bytes(row["body"]),
        usage=None if row["usage"] is None else bytes(row["usage"]),
        cost_nusd=row["cost_nusd"],
        created=row["created"],
        expires=row["expires"],
        last_used=row["last_used"],
    )


async def get(db: Database, key: str) -> Entry | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM response_cache WHERE key = ?", (key,))
    return None if row is None else _entry(row)


async def put_many(
    db: Database, entries: Sequence[Entry], touches: Sequence[tuple[float, str]]
) -> None:
    """Store answers (replacing any under the same key) and note when others were last
    served, in one transaction."""
    statements: list[tuple[str, Sequence[object]]] = [
        (
            f"INSERT OR REPLACE INTO response_cache ({_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.key,
                e.team,
                e.endpoint,
                e.model,
                e.upstream,
                e.kind,
                e.body,
                e.usage,
                e.cost_nusd,
                e.created,
                e.expires,
                e.last_used,
                e.size,
            ),
        )
        for e in entries
    ]
    statements.extend(("UPDATE response_cache SET last_used = ? WHERE key = ?", t) for t in touches)
    await db.transaction(statements)


async def delete(db: Database, keys: Sequence[str]) -> None:
    await db.transaction(("DELETE FROM response_cache WHERE key = ?", (k,)) for k in keys)


async def total_size(db: Database) -> int:
    row = await db.fetchone("SELECT COALESCE(SUM(size), 0) FROM response_cache")
    return int(row[0]) if row is not None else 0


async def evict(db: Database, target: int) -> tuple[int, list[str]]:
    """Delete the least recently used answers until at most ``target`` bytes are left,
    and answers past their expiry; returns (bytes left, keys deleted)."""
    rows = await db.fetchall("SELECT key, size FROM response_cache ORDER BY last_used DESC")
    total, doomed = 0, []
    for row in rows:
        if total + row["size"] > target:
            doomed.append(row["key"])
        else:
            total += row["size"]
    if doomed:
        await delete(db, doomed)
    return total, doomed


async def purge_expired(db: Database, now: float) -> int:
    return await db.execute("DELETE FROM response_cache WHERE expires <= ?", (now,))


async def clear(db: Database, *, team: str | None, model: str | None, now: float) -> int:
    """Delete the answers of ``team`` and/or ``model`` (all when both are None); a
    running server drops them from memory too (it polls cache_clears)."""
    where, params = ["1 = 1"], []
    if team is not None:
        where.append("team = ?")
        params.append(team)
    if model is not None:
        where.append("model = ?")
        params.append(model)
    row = await db.fetchone(
        f"SELECT COUNT(*) FROM response_cache WHERE {' AND '.join(where)}", params
    )
    await db.transaction(
        [
            (f"DELETE FROM response_cache WHERE {' AND '.join(where)}", params),
            ("INSERT INTO cache_clears (ts, team, model) VALUES (?, ?, ?)", (now, team, model)),
        ]
    )
    return int(row[0]) if row is not None else 0


async def clears_since(db: Database, last: int) -> list[tuple[int, str | None, str | None]]:
    rows = await db.fetchall(
        "SELECT id, team, model FROM cache_clears WHERE id > ? ORDER BY id", (last,)
    )
    return [(r["id"], r["team"], r["model"]) for r in rows]


async def last_clear(db: Database) -> int:
    row = await db.fetchone("SELECT COALESCE(MAX(id), 0) FROM cache_clears")
    return int(row[0]) if row is not None else 0


async def stats(db: Database, now: float) -> list[CacheStats]:
    """Per team and model: answers kept, their bytes, how many expired; hits served
    and money saved, from the ledger."""
    kept = await db.fetchall(
        "SELECT team, model, COUNT(*) AS n, SUM(size) AS bytes, SUM(expires <= ?) AS expired "
        "FROM response_cache GROUP BY team, model",
        (now,),
    )
    # Summed per names id (ledger_rows: cache hit = 1 in flags bits 2-3), each name
    # looked up once per group; groups that show alike ('-' for none) merged.
    hits = await db.fetchall(
        "SELECT COALESCE((SELECT name FROM names WHERE id = g.team), '-') AS team, "
        "COALESCE((SELECT name FROM names WHERE id = g.model), '-') AS model, "
        "SUM(g.n) AS n, SUM(g.saved) AS saved "
        "FROM (SELECT team, model, COUNT(*) AS n, SUM(saved_nusd) AS saved FROM ledger_rows "
        "WHERE (flags >> 2) & 3 = 1 GROUP BY team, model) g GROUP BY 1, 2"
    )
    out: dict[tuple[str, str], CacheStats] = {}
    for r in kept:
        out[(r["team"], r["model"])] = CacheStats(
            r["team"], r["model"], r["n"], r["bytes"] or 0, r["expired"] or 0, 0, 0
        )
    for r in hits:
        s = out.setdefault(
            (r["team"], r["model"]), CacheStats(r["team"], r["model"], 0, 0, 0, 0, 0)
        )
        s.hits, s.saved_nusd = r["n"], r["saved"] or 0
    return [out[k] for k in sorted(out)]
