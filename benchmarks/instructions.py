"""CPU instructions per request, counted by valgrind's callgrind: a load-proof measure.

Requests per second on a shared 2-core machine move by 10-20 % from run to run, which
hides a 5 % change in the gateway's own cost. Instructions do not depend on what else
the machine is doing: this runs the bare proxy and aigw each under callgrind, sends
exactly N requests (concurrency C) from this process, and reports the server's
instructions per request and aigw's ratio to the bare proxy. For a CPU-bound server,
req/s at a concurrency that saturates it goes as 1 / (instructions per request), so
the ratio here is the noise-free counterpart of ``benchmarks.run``'s CPU/req ratio.

    python -m benchmarks.instructions                       # 400 requests, c=32, plain
    python -m benchmarks.instructions --stream --requests 300
    python -m benchmarks.instructions --aigw /other/checkout/.venv/bin/aigw   # compare builds
    python -m benchmarks.instructions --targets aigw --scrub off                # scrubbing's cost
    python -m benchmarks.instructions --targets aigw --serve-args "--log-level warning"
    python -m benchmarks.instructions --cache              # cache hits against the bare proxy

Counting: the server starts under callgrind with collection on; after a warm-up batch
its counters are zeroed (``callgrind_control --zero``), the N requests are sent, all
answers read, and the counters dumped. The fake upstream and the load run natively.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from aigw import config as config_mod
from benchmarks.loadgen import request_body
from benchmarks.run import Fleet, aigw_command, free_port, setup_aigw_home, wait_ready, workdir

_TOTALS = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def callgrind(out: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-instr=no",
        "--compress-strings=no",
    ]


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


async def send(url: str, key: str | None, n: int, concurrency: int, stream: bool) -> int:
    """Send exactly ``n`` requests, ``concurrency`` at a time; returns how many got 200."""
    body = request_body(stream)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    left = n
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left, ok
        while left > 0:
            left -= 1
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok += resp.status == 200

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def instructions(dump_dir: Path, pid: int) -> int:
    """Sum the totals of the dumps callgrind wrote for ``pid`` (one per thread/part)."""
    total = 0
    for path in dump_dir.glob(f"*.{pid}*"):
        m = _TOTALS.search(path.read_bytes())
        if m:
            total += int(m.group(1))
    return total


def measure(
    fleet: Fleet,
    name: str,
    argv: list[str],
    ready: str,
    port: int,
    *,
    env: dict[str, str] | None,
    key: str | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    dump_dir = fleet.workdir / f"cg-{name}"
    dump_dir.mkdir()
    server = fleet.start(
        name, [*callgrind(dump_dir / "cg.out.%p"), *argv], f"http://127.0.0.1:{port}", env=env
    )
    wait_ready(server, ready, timeout=900)
    url = server.url + "/v1/chat/completions"
    asyncio.run(send(url, key, args.warmup, args.concurrency, args.stream))
    pid = str(server.proc.pid)
    control("--zero", pid)
    ok = asyncio.run(send(url, key, args.requests, args.concurrency, args.stream))
    for old in dump_dir.iterdir():
        old.unlink()  # anything dumped before the zero
    control("--dump", pid)
    total = instructions(dump_dir, server.proc.pid)
    return {"target": name, "ok": ok, "instructions": total, "per_request": total / args.requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests counted (400)")
    parser.add_argument("--warmup", type=int, default=100, help="requests before counting (100)")
    parser.add_argument("-c", "--concurrency", type=int, default=32, help="in flight (32)")
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    parser.add_argument("--aigw", help="the aigw command to measure (default: this env's)")
    parser.add_argument("--targets", default="bare,aigw", help="bare,aigw (default both)")
    parser.add_argument(
        "--scrub", choices=("on", "off"), default="on", help="aigw's default scrubbing, or off"
    )
    parser.add_argument("--serve-args", default="", help="more options for `aigw serve`")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="aigw with [cache] mode = all: every counted request is a cache hit",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install valgrind (apt-get install valgrind)")
    targets = args.targets.split(",")
    py = [sys.executable, "-m"]
    results: dict[str, dict[str, Any]] = {}
    with workdir(bool(os.environ.get("AIGW_BENCH_KEEP"))) as tmp:
        fleet = Fleet(tmp)
        try:
            up_port = free_port()
            upstream = fleet.start(
                "upstream",
                [*py, "benchmarks.upstream", "--port", str(up_port)],
                f"http://127.0.0.1:{up_port}",
            )
            wait_ready(upstream, "/healthz")
            if "bare" in targets:
                port = free_port()
                bare = [*py, "benchmarks.bare_proxy", "--port", str(port)]
                bare += ["--upstream", upstream.url]
                results["bare"] = measure(
                    fleet, "bare", bare, "/healthz", port, env=None, key=None, args=args
                )
            if "aigw" in targets:
                env = setup_aigw_home(
                    tmp / "home", upstream.url, "normal", scrub=args.scrub == "on"
                )
                key = env.pop("AIGW_BENCH_KEY")
                if args.cache:  # identical requests: the warm-up's first one fills it
                    cfg = config_mod.load(tmp / "home" / "config.toml")
                    cfg.cache.mode = "all"
                    config_mod.save(cfg, tmp / "home" / "config.toml")
                port = free_port()
                cmd = [args.aigw] if args.aigw else aigw_command()
                results["aigw"] = measure(
                    fleet,
                    "aigw",
                    [*cmd, "serve", "--port", str(port), *shlex.split(args.serve_args)],
                    "/readyz",
                    port,
                    env=env,
                    key=key,
                    args=args,
                )
        finally:
            fleet.stop()
    if "bare" in results and "aigw" in results:
        results["ratio"] = {
            "aigw_over_bare": results["aigw"]["per_request"] / results["bare"]["per_request"]
        }
    if args.json:
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for name in ("bare", "aigw"):
            if name in results:
                r = results[name]
                print(f"{name:5} {r['per_request']:14,.0f} instructions/request ({r['ok']} ok)")
        if "ratio" in results:
            print(f"aigw / bare: {results['ratio']['aigw_over_bare']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
