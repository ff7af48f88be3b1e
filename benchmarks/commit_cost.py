"""The writer's CPU per call: group commits of ledger rows and their audit events.

    python -m benchmarks.commit_cost                     # 2000 commits of 20 calls
    python -m benchmarks.commit_cost --commits 5000 --group 50

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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aigw.model import LedgerRecord
from benchmarks.ledger_gen import _rows, audit_event


def run_once(
    state: Path, commits: int, group: int, audit: bool, write: int | None = None
) -> tuple[float, int]:
    """CPU seconds for ``commits`` commits of ``group`` calls (only the first ``write``
    of them written, when given), and the file's size."""
    from aigw.store import open_database
    from aigw.store.sqlite.ledger import append_many

    calls = list(_rows(commits * group, 1.0, 1))
    groups: list[list[LedgerRecord]] = []
    for i in range(0, len(calls), group):
        batch: list[LedgerRecord] = []
        for row in calls[i : i + group]:
            batch.append(row)
            if audit:
                batch.append(audit_event(row))
        groups.append(batch)

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
    return cpu, state.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--group", type=int, default=20, help="calls per commit")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-audit", action="store_true", help="ledger rows only")
    ap.add_argument("--write", type=int, help="write only the first WRITE commits")
    args = ap.parse_args()
    runs: list[float] = []
    size = 0
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cpu, size = run_once(
                Path(tmp) / f"state{i}.db", args.commits, args.group, not args.no_audit, args.write
            )
        written = args.commits if args.write is None else args.write
        runs.append(cpu / (max(1, written - 1) * args.group) * 1e6)
    out: dict[str, Any] = {
        "cpu_us_per_call_median": round(statistics.median(runs), 2),
        "cpu_us_per_call_runs": [round(r, 2) for r in runs],
        "bytes_per_call": round(size / (written * args.group), 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
