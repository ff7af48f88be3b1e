"""The writer's CPU per call: group commits of ledger rows and their audit events.

    python -m benchmarks.commit_cost                     # 2000 commits of 20 calls
    python -m benchmarks.commit_cost --commits 5000 --group 50
    python -m benchmarks.commit_cost --vary 40 --one-key   # 1-40 calls a commit, as under load

Each commit is what the server's group writer hands ``append_many`` when 20 calls
finish together: their ledger rows and audit events (sealed and chained in the same
transaction), on the event loop's fast connection as the server runs it
(``fast_writes``, ``synchronous=NORMAL``: no fsync per commit). Reports CPU
microseconds per call (process time: the writer's Python and SQLite work), the median
of ``--repeat`` runs on fresh files, and the state file's bytes per call.

Load-proof (instructions, not time): run it under callgrind twice, writing fewer of
the same generated commits the first time; the difference over the difference in
calls is the instructions per call of the commits alone (generation and start-up
cancel out)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.a python -m \
        benchmarks.commit_cost --repeat 1 --commits 1200 --write 200
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.b python -m \
        benchmarks.commit_cost --repeat 1 --commits 1200
    # (totals of cg.b - totals of cg.a) / (1000 * 20)

With ``--vary N`` each commit has 1 to N calls (seeded, so the same in both runs); the
``calls`` it prints for each run give the divisor: (totals b - totals a) / (calls b -
calls a). ``--one-key``: every call from one key, team and no app (one rollup group
per commit, as in ``benchmarks.instructions``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aigw.model import LedgerRecord
from benchmarks.ledger_gen import _rows, audit_event


def run_once(
    state: Path,
    commits: int,
    group: int,
    audit: bool,
    write: int | None = None,
    vary: int | None = None,
    one_key: bool = False,
) -> tuple[float, int, int, int]:
    """CPU seconds for ``commits`` commits of ``group`` calls (1 to ``vary`` when
    given; only the first ``write`` of them written, when given), the file's size, the
    calls timed and the calls written (the first commit warms up, untimed)."""
    from aigw.store import open_database
    from aigw.store.sqlite.ledger import append_many

    rnd = random.Random(5)
    sizes = [group if vary is None else rnd.randint(1, vary) for _ in range(commits)]
    calls = list(_rows(sum(sizes), 1.0, 1))
    if one_key:
        calls = [replace(r, key_id="key_001", team="team-01", app=None) for r in calls]
    groups: list[list[LedgerRecord]] = []
    start = 0
    for size in sizes:
        batch: list[LedgerRecord] = []
        for row in calls[start : start + size]:
            batch.append(row)
            if audit:
                batch.append(audit_event(row))
        groups.append(batch)
        start += size
    written = sizes[: write if write is not None else len(sizes)]

    async def run() -> float:
        db = await open_database(state, fast_writes=True)
        try:
            await append_many(db, groups[0])  # warm: names interned, statements cached
            t0 = time.process_time()
            for batch in groups[1 : write if write is not None else len(groups)]:
                await append_many(db, batch)
            return time.process_time() - t0
        finally:
            await db.close()

    cpu = asyncio.run(run())
    return cpu, state.stat().st_size, sum(written[1:]), sum(written)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--group", type=int, default=20, help="calls per commit")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-audit", action="store_true", help="ledger rows only")
    ap.add_argument("--write", type=int, help="write only the first WRITE commits")
    ap.add_argument("--vary", type=int, help="1 to VARY calls per commit (seeded)")
    ap.add_argument("--one-key", action="store_true", help="every call from one key")
    args = ap.parse_args()
    runs: list[float] = []
    size = calls = written = 0
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cpu, size, calls, written = run_once(
                Path(tmp) / f"state{i}.db",
                args.commits,
                args.group,
                not args.no_audit,
                args.write,
                args.vary,
                args.one_key,
            )
        runs.append(cpu / max(1, calls) * 1e6)
    out: dict[str, Any] = {
        "cpu_us_per_call_median": round(statistics.median(runs), 2),
        "cpu_us_per_call_runs": [round(r, 2) for r in runs],
        "bytes_per_call": round(size / max(1, written), 1),
        "calls": calls,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
