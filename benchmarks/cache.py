"""Response-cache hits against the bare proxy (issue 11).

Processes as in ``benchmarks.run``: the fake upstream (zero latency), the bare
aiohttp pass-through proxy in front of it, and ``aigw serve`` with ``[cache] mode =
"all"``; each measurement is a fresh ``benchmarks.loadgen`` process. Every load
generator request is identical, so after the first one (in the warm-up) every aigw
answer is a cache hit, replayed from memory: JSON, or an SSE stream (``-stream``
scenarios; the stored answer is then re-encoded as a stream per hit). The bare proxy
forwards each request to the upstream, as a gateway without a cache would.

Reported per scenario and target: req/s, p50 and p99 latency at the client (for aigw
at concurrency 1 this is the gateway time of a hit plus the client's own HTTP work,
an upper bound), the server's and the upstream's CPU per request, and the
*cpu-bound* ratio: the CPU per request of the bare proxy plus its upstream over that
of a hit (what the req/s ratio would be if the machine's CPUs were the only limit
and nothing else ran on them). Checked: hits at concurrency 32 serve at least 2x the
bare proxy's req/s (issue 11), and every aigw answer in the measurement was a hit
(from the ledger).

Run: ``python -m benchmarks.cache --duration 10 --rounds 2``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from aigw import config as config_mod
from benchmarks.run import (
    Fleet,
    aggregate,
    aigw_command,
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

MIN_HIT_RATIO = 2.0


def hit_rows(state: Path) -> tuple[int, int]:
    """(ledger rows, of which cache hits)."""
    conn = sqlite3.connect(state)
    try:
        row = conn.execute("SELECT COUNT(*), SUM(cache = 'hit') FROM ledger").fetchone()
    finally:
        conn.close()
    return int(row[0]), int(row[1] or 0)


def _chain_cpu(r: dict[str, Any]) -> float | None:
    """CPU per request of the proxy and the upstream behind it (a hit calls none)."""
    cpu = r["cpu_us_per_req"]
    server, upstream = cpu.get("server"), cpu.get("upstream")
    return None if server is None else server + (upstream or 0.0)


def main(args: argparse.Namespace) -> int:
    scenarios = parse_scenarios(args.scenarios)
    py = [sys.executable, "-m"]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with workdir(args.keep) as tmp:
        fleet = Fleet(tmp)
        try:
            up_port, bare_port, aigw_port = free_port(), free_port(), free_port()
            upstream = fleet.start(
                "upstream",
                [*py, "benchmarks.upstream", "--port", str(up_port)],
                f"http://127.0.0.1:{up_port}",
            )
            wait_ready(upstream, "/healthz")
            bare = fleet.start(
                "bare",
                [
                    *py,
                    "benchmarks.bare_proxy",
                    "--port",
                    str(bare_port),
                    "--upstream",
                    upstream.url,
                ],
                f"http://127.0.0.1:{bare_port}",
            )
            wait_ready(bare, "/healthz")
            home = tmp / "aigw-home"
            env = setup_aigw_home(home, upstream.url, "normal")
            key = env.pop("AIGW_BENCH_KEY")
            cfg = config_mod.load(home / "config.toml")
            cfg.cache.mode = "all"
            config_mod.save(cfg, home / "config.toml")
            aigw = fleet.start(
                "aigw-cache",
                [*aigw_command(), "serve", "--port", str(aigw_port)],
                f"http://127.0.0.1:{aigw_port}",
                env=env,
            )
            wait_ready(aigw, "/readyz")
            servers = {"bare": bare, "aigw-cache": aigw}
            for rnd in range(args.rounds):
                order = ["bare", "aigw-cache"] if rnd % 2 == 0 else ["aigw-cache", "bare"]
                for sc in scenarios:
                    for target in order:
                        server = servers[target]
                        r = measure(
                            server.url,
                            sc,
                            key=key if target == "aigw-cache" else None,
                            warmup=args.warmup,
                            duration=args.duration,
                            watch={"server": server.proc.pid, "upstream": upstream.proc.pid},
                            cpus=None,
                        )
                        runs.setdefault((sc.name, target), []).append(r)
                        log(
                            f"round {rnd + 1} {sc.name:<11} {target:<10} {r['rps']:8.1f} req/s "
                            f"p50 {fmt(r['p50_ms'], '.3f')} ms  p99 {fmt(r['p99_ms'], '.3f')} ms "
                            f"errors {r['errors']}"
                        )
        finally:
            fleet.stop()
        rows, hits = hit_rows(home / "state.db")

    results = {k: aggregate(v) for k, v in runs.items()}
    out = []
    ok = True
    for sc in scenarios:
        b, a = results[(sc.name, "bare")], results[(sc.name, "aigw-cache")]
        ratio = a["rps"] / b["rps"] if b["rps"] else float("nan")
        verdict = ""
        if sc.concurrency == 32:
            passed = ratio >= MIN_HIT_RATIO
            ok = ok and passed
            verdict = "PASS" if passed else "FAIL"
        chain = {name: _chain_cpu(r) for name, r in (("bare", b), ("aigw", a))}
        cpu_ratio = chain["bare"] / chain["aigw"] if chain["bare"] and chain["aigw"] else None
        for name, r in (("bare", b), ("aigw hit", a)):
            hit = name == "aigw hit"
            out.append(
                [
                    sc.name,
                    name,
                    f"{r['rps']:.0f}",
                    fmt(r["p50_ms"], ".3f"),
                    fmt(r["p99_ms"], ".3f"),
                    fmt(r["cpu_us_per_req"].get("server"), ".0f"),
                    fmt(r["cpu_us_per_req"].get("upstream"), ".0f"),
                    str(r["errors"]),
                    f"{ratio:.2f}x {verdict}" if hit else "",
                    f"{fmt(cpu_ratio)}x" if hit else "",
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
                "server cpu us/req",
                "upstream cpu us/req",
                "errors",
                "req/s hit/bare",
                "cpu-bound hit/bare",
            ],
            out,
        )
    )
    print(f"ledger: {rows} rows, {hits} cache hits ({rows - hits} calls went upstream)")
    print(
        f"target: cache hits >= {MIN_HIT_RATIO:g}x the bare proxy's req/s at c=32: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok or not args.strict else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds first")
    p.add_argument("--rounds", type=int, default=1, help="repeat each measurement")
    p.add_argument(
        "--scenarios",
        default="c1,c32,c32-stream",
        help="comma-separated cN or cN-stream; default c1,c32,c32-stream",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state.db)")
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    return p


if __name__ == "__main__":
    raise SystemExit(main(build_parser().parse_args()))
