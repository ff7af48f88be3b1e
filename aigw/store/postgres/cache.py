"""The response cache's table on PostgreSQL (the twin of :mod:`aigw.store.sqlite.cache`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from aigw.cache.entry import CacheStats, Entry
from aigw.store.postgres.db import PgDatabase

_COLUMNS = (
    "key, team, endpoint, model, upstream, kind, body, usage, cost_nusd, created, expires, "
    "last_used, size"
)
_PUT = (
    f"INSERT INTO response_cache ({_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])
)


def _entry(row: asyncpg.Record) -> Entry:
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


class PgCache:
    """:class:`~aigw.store.base.CacheTable` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def get(self, key: str) -> Entry | None:
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM response_cache WHERE key = $1", key)
        return None if row is None else _entry(row)

    async def put_many(
        self, entries: Sequence[Entry], touches: Sequence[tuple[float, str]]
    ) -> None:
        async with self.db.pool.acquire() as conn, conn.transaction():
            if entries:
                await conn.executemany(
                    _PUT,
                    [
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
                        )
                        for e in entries
                    ],
                )
            if touches:
                await conn.executemany(
                    "UPDATE response_cache SET last_used = $1 WHERE key = $2", list(touches)
                )

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self.db.execute(
                "DELETE FROM response_cache WHERE key = ANY($1::text[])", list(keys)
            )

    async def total_size(self) -> int:
        row = await self.db.fetchrow("SELECT COALESCE(SUM(size), 0) FROM response_cache")
        return int(row[0]) if row is not None else 0

    async def evict(self, target: int) -> tuple[int, list[str]]:
        rows = await self.db.fetch("SELECT key, size FROM response_cache ORDER BY last_used DESC")
        total, doomed = 0, []
        for row in rows:
            if total + row["size"] > target:
                doomed.append(row["key"])
            else:
                total += row["size"]
        await self.delete(doomed)
        return total, doomed

    async def purge_expired(self, now: float) -> int:
        return await self.db.execute("DELETE FROM response_cache WHERE expires <= $1", now)

    async def clear(self, *, team: str | None, model: str | None, now: float) -> int:
        where, params = ["TRUE"], list[object]()
        for column, value in (("team", team), ("model", model)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        async with self.db.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"DELETE FROM response_cache WHERE {' AND '.join(where)}", *params
            )
            await conn.execute(
                "INSERT INTO cache_clears (ts, team, model) VALUES ($1, $2, $3)", now, team, model
            )
        return int(status.rsplit(" ", 1)[-1])

    async def clears_since(self, last: int) -> list[tuple[int, str | None, str | None]]:
        rows = await self.db.fetch(
            "SELECT id, team, model FROM cache_clears WHERE id > $1 ORDER BY id", last
        )
        return [(int(r["id"]), r["team"], r["model"]) for r in rows]

    async def last_clear(self) -> int:
        row = await self.db.fetchrow("SELECT COALESCE(MAX(id), 0) FROM cache_clears")
        return int(row[0]) if row is not None else 0

    async def stats(self, now: float) -> list[CacheStats]:
        kept = await self.db.fetch(
            "SELECT team, model, COUNT(*) AS n, SUM(size) AS bytes, "
            "COUNT(*) FILTER (WHERE expires <= $1) AS expired "
            "FROM response_cache GROUP BY team, model",
            now,
        )
        hits = await self.db.fetch(
            "SELECT COALESCE(team, '-') AS team, COALESCE(model, '-') AS model, "
            "COUNT(*) AS n, SUM(saved_nusd) AS saved FROM ledger WHERE cache = 'hit' "
            "GROUP BY 1, 2"
        )
        out: dict[tuple[str, str], CacheStats] = {}
        for r in kept:
            out[(r["team"], r["model"])] = CacheStats(
                r["team"], r["model"], int(r["n"]), int(r["bytes"] or 0), int(r["expired"]), 0, 0
            )
        for r in hits:
            s = out.setdefault(
                (r["team"], r["model"]), CacheStats(r["team"], r["model"], 0, 0, 0, 0, 0)
            )
            s.hits, s.saved_nusd = int(r["n"]), int(r["saved"] or 0)
        return [out[k] for k in sorted(out)]
