"""Scale-out (issue 14): aigw on PostgreSQL + Redis against aigw on SQLite, and two
processes against one, each as a ratio of the bare proxy measured in the same run.

Processes as in ``benchmarks.run``: the fake upstream (zero latency), the bare aiohttp
pass-through proxy, and ``aigw serve`` in three set-ups, all with ``--limits`` (a rate
limit, a concurrency cap and a budget on the key and its team, far above the load, so
every check runs):

* ``sqlite``: one process, the SQLite state file, limits counted in process;
* ``pg+redis``: one process, ``[store] url`` on a fresh PostgreSQL database and
  ``[counters] url`` on Redis (a fresh key prefix);
* ``2x pg+redis``: two processes on that database and Redis, each driven by its own
  load generator with half the concurrency (c32 = 2 x c16; c1 drives one process).

Reported per scenario: req/s, p50 and p99, and for aigw the req/s ratio to the bare
proxy and the added p50 (aigw's p50 minus the bare proxy's); the server's CPU per
request (for two processes: both together). On this 2-core machine
two processes share the same two cores with the load generators, PostgreSQL and
Redis: the second process shows what the shared state costs, not more capacity.

    python -m benchmarks.scale --duration 5 --rounds 2
    python -m benchmarks.scale --postgres postgresql://127.0.0.1:5432/test --redis redis://127.0.0.1:6379/0

It needs a PostgreSQL server it may create a database on, and Redis (the defaults are
the development machines'); the database and the Redis keys it made are dropped at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.run import (
    Fleet,
    Server,
    aggregate,
    aigw_command,
    drop_counters,
    fmt,
    free_port,
    log,
    measure,
    parse_scenarios,
    setup_aigw_home,
    table,
    wait_ready,
    workdir,
)

SETUPS = ("sqlite", "pg+redis", "2x pg+redis")


def _database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(server_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _measure_split(
    servers: list[Server], concurrency: int, stream: bool, args: argparse.Namespace, key: str
) -> dict[str, Any]:
    """One measurement spread over ``servers``: a load generator per server, each with
    its share of the concurrency, run at the same time; their results pooled."""
    from benchmarks.run import Scenario

    share = max(1, concurrency // len(servers))
    sc = Scenario(f"c{share}{'-stream' if stream else ''}", share, stream)
    results: list[dict[str, Any]] = [{}] * len(servers)

    def run(i: int, server: Server) -> None:
        results[i] = measure(
            server.url,
            sc,
            key=key,
            warmup=args.warmup,
            duration=args.duration,
            watch={"server": server.proc.pid},
            cpus=None,
        )

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pooled = dict(results[0])
    pooled["latencies_ms"] = [x for r in results for x in r["latencies_ms"]]
    # The generators measured the same window: the pooled rate is the sum of theirs.
    pooled["rps"] = sum(r["rps"] for r in results)
    pooled["duration_s"] = max(r["duration_s"] for r in results)
    pooled["errors"] = sum(r["errors"] for r in results)
    pooled["total_ok"] = sum(r["total_ok"] for r in results)
    pooled["error_kinds"] = {}
    for r in results:
        for k, n in r["error_kinds"].items():
            pooled["error_kinds"][k] = pooled["error_kinds"].get(k, 0) + n
    pooled["cpu_s"] = {
        name: sum(r["cpu_s"].get(name) or 0.0 for r in results) for name in results[0]["cpu_s"]
    }
    return pooled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds first")
    p.add_argument("--rounds", type=int, default=1, help="repeat each measurement")
    p.add_argument("--scenarios", default="c1,c32", help="cN or cN-stream, comma-separated")
    p.add_argument(
        "--postgres",
        default=os.environ.get("AIGW_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test"),
        help="a PostgreSQL server URL (a database is created there and dropped)",
    )
    p.add_argument(
        "--redis",
        default=os.environ.get("AIGW_TEST_REDIS", "redis://127.0.0.1:6379/0"),
        help="Redis for [counters] (a fresh key prefix, deleted afterwards)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = p.parse_args(argv)
    scenarios = parse_scenarios(args.scenarios)
    db_name = f"aigw_bench_{os.urandom(4).hex()}"
    asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{db_name}"'))
    py = [sys.executable, "-m"]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    homes: list[Path] = []
    try:
        with workdir(args.keep) as tmp:
            fleet = Fleet(tmp)
            try:
                up_port, bare_port = free_port(), free_port()
                upstream = fleet.start(
                    "upstream",
                    [*py, "benchmarks.upstream", "--port", str(up_port)],
                    f"http://127.0.0.1:{up_port}",
                )
                wait_ready(upstream, "/healthz")
                bare_argv = [*py, "benchmarks.bare_proxy", "--port", str(bare_port)]
                bare = fleet.start(
                    "bare",
                    [*bare_argv, "--upstream", upstream.url],
                    f"http://127.0.0.1:{bare_port}",
                )
                wait_ready(bare, "/healthz")
                lite_home, pg_home = tmp / "sqlite", tmp / "pg"
                lite_env = setup_aigw_home(lite_home, upstream.url, "normal", limits=True)
                homes.append(pg_home)  # its Redis keys are dropped at the end
                pg_env = setup_aigw_home(
                    pg_home,
                    upstream.url,
                    "normal",
                    limits=True,
                    counters=args.redis,
                    store_url=_database_url(args.postgres, db_name),
                )
                keys = {"sqlite": lite_env.pop("AIGW_BENCH_KEY")}
                keys["pg"] = pg_env.pop("AIGW_BENCH_KEY")

                def serve(name: str, env: dict[str, str]) -> Server:
                    port = free_port()
                    s = fleet.start(
                        name,
                        [*aigw_command(), "serve", "--port", str(port)],
                        f"http://127.0.0.1:{port}",
                        env=env,
                    )
                    wait_ready(s, "/readyz")
                    return s

                groups = {
                    "sqlite": [serve("aigw-sqlite", lite_env)],
                    "pg+redis": [serve("aigw-pg-1", pg_env)],
                }
                groups["2x pg+redis"] = [groups["pg+redis"][0], serve("aigw-pg-2", pg_env)]
                for rnd in range(args.rounds):
                    for sc in scenarios:
                        order = ["bare", *SETUPS]
                        if rnd % 2:
                            order.reverse()
                        for target in order:
                            if target == "bare":
                                r = measure(
                                    bare.url,
                                    sc,
                                    key=None,
                                    warmup=args.warmup,
                                    duration=args.duration,
                                    watch={"server": bare.proc.pid},
                                    cpus=None,
                                )
                            else:
                                servers = groups[target]
                                if sc.concurrency == 1:
                                    servers = servers[:1]
                                key = keys["sqlite" if target == "sqlite" else "pg"]
                                r = _measure_split(servers, sc.concurrency, sc.stream, args, key)
                            runs.setdefault((sc.name, target), []).append(r)
                            log(
                                f"round {rnd + 1} {sc.name:<10} {target:<12} "
                                f"{r['rps']:8.1f} req/s "
                                f"errors {r['errors']}"
                            )
            finally:
                fleet.stop()
    finally:
        for home in homes:
            if (home / "config.toml").exists():
                drop_counters(home)
        asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    results = {k: aggregate(v) for k, v in runs.items()}
    rows = []
    for sc in scenarios:
        b = results[(sc.name, "bare")]
        for target in ("bare", *SETUPS):
            r = results[(sc.name, target)]
            aigw = target != "bare"
            added = (
                r["p50_ms"] - b["p50_ms"]
                if aigw and r["p50_ms"] is not None and b["p50_ms"] is not None
                else None
            )
            rows.append(
                [
                    sc.name,
                    target,
                    f"{r['rps']:.0f}",
                    fmt(r["p50_ms"], ".3f"),
                    fmt(r["p99_ms"], ".3f"),
                    str(r["errors"]),
                    f"{r['rps'] / b['rps']:.2f}" if aigw and b["rps"] else "",
                    fmt(added, "+.3f") if aigw else "",
                    fmt(r["cpu_us_per_req"].get("server"), ".0f"),
                ]
            )
    print(
        table(
            [
                "scenario",
                "target",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "x bare",
                "added p50",
                "cpu us/req",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
