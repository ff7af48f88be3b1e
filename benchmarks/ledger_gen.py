"""Synthetic ledgers at scale, and how fast aigw reads them.

    python -m benchmarks.ledger_gen --rows 1000000 --home /tmp/l1m          # generate
    python -m benchmarks.ledger_gen --rows 0 --home /tmp/l1m --measure      # time reads
    python -m benchmarks.ledger_gen --rows 1000000 --audit --home /tmp/a1m  # + audit events

Rows go straight through the store layer (``append_many``: the ledger's multi-row
INSERTs and the rollups' upserts), in big transactions: rows and rollups stay
consistent, exactly as the server writes them. With ``--audit`` each row comes with
the audit event a proxied call writes (:func:`audit_event`, sealed and chained in the
same commit), so the state file holds what the gateway's calls leave in it.

Distributions: 12 teams (Zipf-like weights), 5 keys and 2 apps per team, 6 models on
3 providers by popularity, 96% answered (429, 500, 502, 400 for the rest), half
streamed, log-normal tokens and latency, 1% unpriced, a response cache answering ~20%
of cacheable calls, a diurnal rate over ``--days`` days ending now. 50,000 rows are
sampled from these, then reused with fresh times and request ids.

``--measure`` times (median of 3) the report queries behind ``aigw report --by team
--since 30d``, ``--by day``, ``--budgets`` (with a budget on every team and key), the
server start (app set-up: migrations, keys, budget spend loaded), and prints the state
file's bytes per row. JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sqlite3
import statistics
import time
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from aigw.audit import call_event
from aigw.model import AuditEvent, LedgerRecord, LedgerRow

MODELS = [  # (model, provider, weight, nano-USD per prompt token, per completion token)
    ("gpt-4o-mini", "openai", 30, 150, 600),
    ("gpt-4o", "openai", 15, 2500, 10000),
    ("claude-sonnet-4-5", "anthropic", 20, 3000, 15000),
    ("claude-haiku-4-5", "anthropic", 15, 1000, 5000),
    ("gemini-2.5-flash", "gemini", 15, 300, 2500),
    ("local-llama", "vllm", 5, None, None),  # no price: unpriced rows
]
STATUSES = [(200, 960), (429, 20), (500, 10), (502, 5), (400, 5)]
TEAMS = [f"team-{i:02d}" for i in range(12)]


# Field values of a row in LedgerRow's order; ts and request_id come first.
_FIELDS = [f.name for f in fields(LedgerRow)]
assert _FIELDS[:2] == ["ts", "request_id"]
_VALUES = attrgetter(*_FIELDS)
POOL = 50_000  # distinct rows sampled from the distributions; then reused with new times


def _rows(n: int, days: float, seed: int) -> Any:
    """``n`` rows in time order: each a copy of one of POOL sampled rows with its own
    time and request id (sampling every field of 10M rows would take longer than
    writing them)."""
    rnd = random.Random(seed)
    end = time.time()
    start = end - days * 86400
    pool = [_VALUES(r)[2:] for r in _sampled(min(n, POOL), rnd)]
    mean_gap = (end - start) / max(1, n)
    ts = start
    for _ in range(n):
        hour = (ts % 86400) / 3600
        shape = 1.0 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi)
        ts = min(ts + rnd.expovariate(1.0) * mean_gap / shape, end - 1e-3)
        # The id as the gateway mints it (its time, then random bits).
        rid = f"req_{round(ts * 1_000_000):013x}{rnd.getrandbits(44):011x}"
        yield LedgerRow(ts, rid, *pool[rnd.randrange(len(pool))])


def _sampled(n: int, rnd: random.Random) -> Any:
    ts = 0.0
    team_w = [1 / (i + 1) for i in range(len(TEAMS))]
    model_w = [m[2] for m in MODELS]
    status_values = [s for s, _ in STATUSES]
    status_w = [w for _, w in STATUSES]
    for _ in range(n):
        t = rnd.choices(range(len(TEAMS)), team_w)[0]
        team = TEAMS[t]
        k = rnd.randrange(5)
        model, provider, _, p_in, p_out = rnd.choices(MODELS, model_w)[0]
        status = rnd.choices(status_values, status_w)[0]
        ok = status < 400
        prompt = int(rnd.lognormvariate(6.5, 1.2)) if ok else 0
        completion = int(rnd.lognormvariate(5.0, 1.0)) if ok else 0
        cache = None
        if ok and rnd.random() < 0.8:
            cache = "hit" if rnd.random() < 0.2 else "miss"
        cost: int | None
        cost = None if p_in is None or p_out is None else prompt * p_in + completion * p_out
        saved = 0
        if cache == "hit" and cost is not None:
            cost, saved = 0, cost
        yield LedgerRow(
            ts=ts,
            request_id=f"req_{rnd.getrandbits(96):024x}",
            key_id=f"key_{t:02d}{k}",
            team=team,
            app=f"app-{t:02d}-{k % 2}",
            endpoint="chat.completions",
            model=model,
            provider=provider,
            upstream_model=model,
            status=status,
            stream=rnd.random() < 0.5,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=prompt // 4 if rnd.random() < 0.3 else 0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            usage_estimated=False,
            cost_nusd=cost,
            latency_ms=int(rnd.lognormvariate(6.5, 0.8)),
            error=None if ok else f"upstream answered {status}",
            upstream_request_id=f"req_{rnd.getrandbits(80):020x}" if ok else None,
            attempts=1,
            routing=None,
            cache=cache,
            saved_nusd=saved,
        )


def audit_event(row: LedgerRow) -> AuditEvent:
    """The event a proxied call writes with its row (no scrub counts)."""
    return call_event(row)


def generate(state: Path, n: int, days: float, seed: int, batch: int, audit: bool = False) -> float:
    """Write ``n`` rows (and their rollups; with ``audit``, their audit events) through
    the store's ``append_many``, in transactions of ``batch`` rows; returns seconds
    taken."""
    from aigw.store import open_database
    from aigw.store.sqlite.ledger import append_many

    async def run() -> float:
        db = await open_database(state)
        try:
            await db.writer.execute("PRAGMA synchronous=OFF")
            await db.writer.execute("PRAGMA cache_size=-200000")
            t0 = time.perf_counter()
            rows: list[LedgerRecord] = []
            written = 0
            for row in _rows(n, days, seed):
                rows.append(row)
                if audit:
                    rows.append(audit_event(row))
                if len(rows) >= batch * (2 if audit else 1):
                    await append_many(db, rows)
                    written += batch
                    rows = []
                    if written % (batch * 50) == 0:
                        print(f"{written:,} rows, {time.perf_counter() - t0:.0f} s", flush=True)
            if rows:
                await append_many(db, rows)
            await db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return time.perf_counter() - t0
        finally:
            await db.close()

    return asyncio.run(run())


def _median(fn: Any, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(home: Path) -> dict[str, Any]:
    os.environ["AIGW_HOME"] = str(home)
    from aigw import paths, report
    from aigw.app import create_app
    from aigw.config import load
    from aigw.model import Limits
    from aigw.server import Server
    from aigw.store import SQLiteStore, open_database

    p = paths.resolve()
    cfg = load(p.config_file)
    now = time.time()

    async def with_store(fn: Any) -> Any:
        db = await open_database(p.state_file)
        try:
            return await fn(SQLiteStore(db))
        finally:
            await db.close()

    async def setup_budgets(store: SQLiteStore) -> None:  # a budget on every team and key
        existing = {t.name for t in await store.teams.list_all()}
        for i, team in enumerate(TEAMS):
            if team not in existing:
                await store.teams.create(team, Limits(budget_nusd=10**15, period="month"))
                for k in range(5):
                    await store.keys.create(
                        team=team, name=f"k{i}{k}", limits=Limits(budget_nusd=10**14)
                    )

    asyncio.run(with_store(setup_budgets))

    def rep(by: str, since: float | None) -> None:
        asyncio.run(with_store(lambda s: report.build(s.reports, by=by, since=since)))

    def budgets() -> None:
        asyncio.run(with_store(lambda s: report.budgets(s, cfg, now)))

    async def start() -> None:
        server = Server(create_app(cfg, p.state_file))
        await server.setup()
        await server.close()

    out: dict[str, Any] = {
        "report_by_team_30d_s": _median(lambda: rep("team", now - 30 * 86400)),
        "report_by_day_7d_s": _median(lambda: rep("day", now - 7 * 86400)),
        "report_by_day_all_s": _median(lambda: rep("day", None)),
        "budgets_s": _median(budgets),
        "server_start_s": _median(lambda: asyncio.run(start())),
    }
    conn = sqlite3.connect(p.state_file)
    rows = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    hour = conn.execute("SELECT COUNT(*) FROM rollup_hour").fetchone()[0]
    conn.close()
    size = p.state_file.stat().st_size
    out.update(
        ledger_rows=rows,
        rollup_hour_rows=hour,
        file_bytes=size,
        bytes_per_row=round(size / max(1, rows), 1),
        mb_per_million_rows=round(size / max(1, rows) * 1e6 / 1e6, 1),
    )
    return out


def sizes(state: Path) -> dict[str, Any]:
    """Bytes per ledger row of the whole file and of each table and index (pages, as
    ``dbstat`` counts them), biggest first."""
    conn = sqlite3.connect(state)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM ledger_rows").fetchone()[0] or 1
        pages = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    finally:
        conn.close()
    return {
        "rows": rows,
        "file_bytes_per_row": round(state.stat().st_size / rows, 1),
        "bytes_per_row": {name: round(size / rows, 1) for name, size in pages if size >= rows / 10},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="AIGW_HOME to write into")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=20_000, help="rows per transaction")
    ap.add_argument("--measure", action="store_true", help="time the reads afterwards")
    ap.add_argument(
        "--audit", action="store_true", help="write each row's audit event too (as a call does)"
    )
    ap.add_argument("--sizes", action="store_true", help="bytes per row of each table and index")
    args = ap.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    os.environ["AIGW_HOME"] = str(args.home)
    from aigw import paths
    from aigw.config import default_config, save

    p = paths.resolve()
    if not p.config_file.exists():
        save(default_config(), p.config_file)
    if args.rows:
        took = generate(p.state_file, args.rows, args.days, args.seed, args.batch, args.audit)
        print(f"generated {args.rows:,} rows in {took:.1f} s ({args.rows / took:,.0f} rows/s)")
    if args.measure:
        print(json.dumps(measure(args.home), indent=2))
    if args.sizes:
        print(json.dumps(sizes(p.state_file), indent=2))


if __name__ == "__main__":
    main()
