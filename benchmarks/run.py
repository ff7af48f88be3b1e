"""Benchmark aigw against a bare aiohttp pass-through proxy (and the upstream itself).

Starts, each as its own process: a fake OpenAI upstream, a bare aiohttp proxy in
front of it, and `aigw serve` (auth and ledger on) in front of it too. Then, per
scenario and target, a separate load-generator process drives the same closed-loop
load (concurrency 1 or 32, plain or streamed) and reports requests/s and latency.

    python -m benchmarks.run                      # everything, 10 s per measurement
    python -m benchmarks.run --duration 5 --rounds 2 --json out.json
    python -m benchmarks.run --scenarios c1,c32 --targets bare,aigw

See benchmarks/README.md for what is measured and how to read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from aigw import config as config_mod
from benchmarks.common import loop_name
from benchmarks.loadgen import percentile

TARGETS = ("direct", "bare", "aigw")
DEFAULT_SCENARIOS = ("c1", "c32", "c1-stream", "c32-stream")
_SCENARIO = re.compile(r"^c(\d+)(-stream)?$")

# The issue's targets for aigw against the bare proxy.
MIN_RPS_RATIO = 0.60  # at concurrency 32
MAX_ADDED_P50_MS = 1.0  # at concurrency 1

PROVIDER = "openai"
PROVIDER_KEY = "sk-bench-dummy"


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    stream: bool


def parse_scenarios(text: str) -> list[Scenario]:
    out = []
    for name in (s.strip() for s in text.split(",") if s.strip()):
        m = _SCENARIO.match(name)
        if not m or int(m.group(1)) < 1:
            raise SystemExit(f"--scenarios: {name!r} is not cN or cN-stream (e.g. c32-stream)")
        out.append(Scenario(name, int(m.group(1)), bool(m.group(2))))
    if not out:
        raise SystemExit("--scenarios: none given")
    return out


def parse_targets(text: str) -> list[str]:
    out = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in out if t not in TARGETS]
    if bad or not out:
        raise SystemExit(f"--targets: choose from {', '.join(TARGETS)} (got {text!r})")
    return out


def parse_cpus(text: str | None, what: str) -> set[int] | None:
    if not text:
        return None
    try:
        cpus = {int(c) for c in text.split(",")}
    except ValueError:
        raise SystemExit(f"{what}: expected CPU numbers like 0 or 0,1 (got {text!r})") from None
    available = os.sched_getaffinity(0)
    if not cpus <= available:
        raise SystemExit(f"{what}: CPUs {sorted(cpus - available)} are not available")
    return cpus


# -- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinner(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def preexec() -> None:  # runs in the child before exec: threads inherit it
        os.sched_setaffinity(0, cpus)

    return preexec


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Fleet:
    workdir: Path
    servers: list[Server] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        url: str,
        *,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
                preexec_fn=_pinner(cpus),
            )
        server = Server(name, proc, log, url)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        # Newest first: aigw before the upstream, so its shutdown drains cleanly.
        for server in reversed(self.servers):
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in reversed(self.servers):
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


def wait_ready(server: Server, path: str, timeout: float = 30.0) -> None:
    """Poll ``server.url + path`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise SystemExit(
                f"{server.name} exited with code {server.proc.returncode} during start-up:\n"
                + server.tail()
            )
        try:
            with urllib.request.urlopen(server.url + path, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.name} not ready after {timeout:g} s:\n" + server.tail())
        time.sleep(0.05)


def aigw_command() -> list[str]:
    script = Path(sys.executable).parent / "aigw"
    if script.exists():
        return [str(script)]
    found = shutil.which("aigw")
    if found is None:
        raise SystemExit("cannot find the `aigw` command; install aigw in this environment")
    return [found]


def setup_aigw_home(home: Path, upstream_url: str, synchronous: str) -> dict[str, str]:
    """Write config.toml and create a gateway key; returns the env for aigw and the key."""
    cfg = config_mod.Config()
    cfg.ledger.synchronous = synchronous
    cfg.providers[PROVIDER] = config_mod.ProviderConfig(
        name=PROVIDER, type="openai", base_url=upstream_url + "/v1"
    )
    config_mod.save(cfg, home / "config.toml")
    env = {
        **os.environ,
        "AIGW_HOME": str(home),
        f"AIGW_{PROVIDER.upper()}_API_KEY": PROVIDER_KEY,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    out = subprocess.run(
        [*aigw_command(), "keys", "create", "--team", "bench", "--app", "benchmark", "--json"],
        env=env,
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"`aigw keys create` failed:\n{out.stdout.decode()}{out.stderr.decode()}")
    key = orjson.loads(out.stdout)["key"]
    return {**env, "AIGW_BENCH_KEY": key}


# -- measuring -----------------------------------------------------------------------


def measure(
    url: str,
    scenario: Scenario,
    *,
    key: str | None,
    warmup: float,
    duration: float,
    watch: dict[str, int],
    cpus: set[int] | None,
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        "--url",
        url + "/v1/chat/completions",
        "--concurrency",
        str(scenario.concurrency),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
    ]
    if scenario.stream:
        argv.append("--stream")
    if key:
        argv += ["--key", key]
    for name, pid in watch.items():
        argv += ["--watch", f"{name}={pid}"]
    out = subprocess.run(
        argv,
        capture_output=True,
        timeout=warmup + duration + 120,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
        preexec_fn=_pinner(cpus),
    )
    if out.returncode != 0:
        raise SystemExit(f"load generator failed:\n{out.stderr.decode(errors='replace')}")
    result: dict[str, Any] = orjson.loads(out.stdout)
    return result


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rounds of one (scenario, target): all latencies, total time."""
    lat = sorted(x for r in runs for x in r["latencies_ms"])
    duration = sum(r["duration_s"] for r in runs)
    requests = len(lat)
    kinds: dict[str, int] = {}
    samples: dict[str, str] = {}
    for r in runs:
        for k, n in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
        for k, v in r["error_samples"].items():
            samples.setdefault(k, v)
    cpu: dict[str, float | None] = {}
    for name in runs[0]["cpu_s"]:
        values = [r["cpu_s"].get(name) for r in runs]
        cpu[name] = None if any(v is None for v in values) else sum(v for v in values if v)
    return {
        "requests": requests,
        "duration_s": duration,
        "rps": requests / duration if duration else 0.0,
        "rps_rounds": [round(r["rps"], 1) for r in runs],
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "mean_ms": sum(lat) / requests if requests else float("nan"),
        "errors": sum(r["errors"] for r in runs),
        "error_kinds": kinds,
        "error_samples": samples,
        "total_ok": sum(r["total_ok"] for r in runs),
        # CPU seconds per completed request, in microseconds, per watched process.
        "cpu_us_per_req": {
            name: (v / requests * 1e6 if v is not None and requests else None)
            for name, v in cpu.items()
        },
        "loadgen_cpu_pct": (cpu["loadgen"] or 0.0) / duration * 100 if duration else 0.0,
    }


# -- reporting -----------------------------------------------------------------------


def fmt(v: float | None, spec: str = ".2f") -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    return format(v, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = [i > 1 for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def compare(results: dict[tuple[str, str], dict[str, Any]], scenarios: list[Scenario]) -> Any:
    """aigw against the bare proxy, per scenario, and the issue's targets."""
    ratios = []
    checks = []
    for sc in scenarios:
        bare, aigw = results.get((sc.name, "bare")), results.get((sc.name, "aigw"))
        if bare is None or aigw is None:
            continue
        ratio = aigw["rps"] / bare["rps"] if bare["rps"] else float("nan")
        added = aigw["p50_ms"] - bare["p50_ms"]
        cpu_a = aigw["cpu_us_per_req"].get("server")
        cpu_b = bare["cpu_us_per_req"].get("server")
        ratios.append(
            {
                "scenario": sc.name,
                "rps_ratio": ratio,
                "added_p50_ms": added,
                "added_p99_ms": aigw["p99_ms"] - bare["p99_ms"],
                "cpu_us_per_req_ratio": cpu_a / cpu_b if cpu_a and cpu_b else None,
                # req/s ratio if each proxy had its own CPU and were the bottleneck
                "cpu_bound_rps_ratio": cpu_b / cpu_a if cpu_a and cpu_b else None,
            }
        )
        if sc.concurrency == 32:
            checks.append(
                {
                    "scenario": sc.name,
                    "target": f"aigw req/s >= {MIN_RPS_RATIO:.0%} of bare proxy at concurrency 32",
                    "value": f"{ratio:.0%}",
                    "pass": ratio >= MIN_RPS_RATIO,
                }
            )
        if sc.concurrency == 1:
            checks.append(
                {
                    "scenario": sc.name,
                    "target": f"aigw adds <= {MAX_ADDED_P50_MS:g} ms p50 at concurrency 1",
                    "value": f"{added:+.3f} ms",
                    "pass": added <= MAX_ADDED_P50_MS,
                }
            )
    return ratios, checks


def ledger_rows(state_file: Path) -> tuple[int, int] | None:
    """(rows, rows with status 200) in aigw's ledger."""
    try:
        con = sqlite3.connect(f"file:{state_file}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        total, ok = con.execute(
            "SELECT count(*), coalesce(sum(status = 200), 0) FROM ledger"
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return int(total), int(ok)


def git_commit(repo: Path) -> str | None:
    """HEAD's short hash, with "+dirty" when aigw/ has uncommitted changes."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        check=False,
    )
    commit = out.stdout.decode().strip()
    if not commit:
        return None
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "aigw"],
        capture_output=True,
        check=False,
    )
    return commit + ("+dirty" if status.stdout.strip() else "")


def first_traceback(log: Path, lines: int = 40) -> str | None:
    """The first logged traceback in a server's log, to explain its errors."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for i, line in enumerate(text):
        if line.startswith("Traceback"):
            start = max(0, i - 1)
            return "\n".join(text[start : start + lines])
    return None


# -- main ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark aigw (auth + ledger on) against a bare aiohttp pass-through "
        "proxy and the fake upstream itself. Every server and each load generator run in "
        "their own process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each")
    ap.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help="comma-separated cN (concurrency N, plain) or cN-stream (streamed)",
    )
    ap.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated subset of direct,bare,aigw"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every measurement; the target order alternates each round and the "
        "results are pooled (reduces drift on a shared machine)",
    )
    ap.add_argument(
        "--pin",
        choices=("none", "split"),
        default="none",
        help="CPU affinity. none: the OS schedules everything. split: the proxy under test "
        "(bare or aigw) gets the first CPU, the upstream and the load generator the others",
    )
    ap.add_argument(
        "--ledger-sync",
        choices=("normal", "full"),
        default="normal",
        help="aigw's [ledger] synchronous setting",
    )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state.db)")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a target is missed or any request failed",
    )
    return ap


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aigw-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def log(msg: str, stream: IO[str] = sys.stderr) -> None:
    print(msg, file=stream, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenarios = parse_scenarios(args.scenarios)
    targets = parse_targets(args.targets)
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1:
        raise SystemExit("--duration must be > 0, --warmup >= 0, --rounds >= 1")
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpus: set[int] | None = None
    other_cpus: set[int] | None = None
    if args.pin == "split":
        if len(cpus) < 2:
            raise SystemExit("--pin split needs at least 2 CPUs")
        proxy_cpus, other_cpus = {cpus[0]}, set(cpus[1:])

    py = [sys.executable, "-m"]
    with workdir(args.keep) as tmp:
        fleet = Fleet(tmp)
        try:
            up_port, bare_port, aigw_port = free_port(), free_port(), free_port()
            bare_argv = [*py, "benchmarks.bare_proxy", "--port", str(bare_port)]
            upstream = fleet.start(
                "upstream",
                [*py, "benchmarks.upstream", "--port", str(up_port)],
                f"http://127.0.0.1:{up_port}",
                cpus=other_cpus,
            )
            wait_ready(upstream, "/healthz")
            servers: dict[str, Server] = {"direct": upstream}
            if "bare" in targets:
                bare = fleet.start(
                    "bare",
                    [*bare_argv, "--upstream", upstream.url],
                    f"http://127.0.0.1:{bare_port}",
                    cpus=proxy_cpus,
                )
                wait_ready(bare, "/healthz")
                servers["bare"] = bare
            key: str | None = None
            home = tmp / "aigw-home"
            if "aigw" in targets:
                env = setup_aigw_home(home, upstream.url, args.ledger_sync)
                key = env.pop("AIGW_BENCH_KEY")
                aigw = fleet.start(
                    "aigw",
                    [*aigw_command(), "serve", "--port", str(aigw_port)],
                    f"http://127.0.0.1:{aigw_port}",
                    env=env,
                    cpus=proxy_cpus,
                )
                wait_ready(aigw, "/readyz")
                servers["aigw"] = aigw

            log(
                f"aigw benchmark: {len(cpus)} CPUs, loop {loop_name()}, pin {args.pin}, "
                f"{args.warmup:g} s warm-up + {args.duration:g} s per run, "
                f"{args.rounds} round(s)"
            )
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            total = args.rounds * len(scenarios) * len(targets)
            n = 0
            for rnd in range(args.rounds):
                order = targets if rnd % 2 == 0 else list(reversed(targets))
                for sc in scenarios:
                    for target in order:
                        n += 1
                        server = servers[target]
                        watch = {"server": server.proc.pid}
                        if target != "direct":
                            watch["upstream"] = upstream.proc.pid
                        r = measure(
                            server.url,
                            sc,
                            key=key if target == "aigw" else None,
                            warmup=args.warmup,
                            duration=args.duration,
                            watch=watch,
                            cpus=other_cpus,
                        )
                        r.update(round=rnd + 1, scenario=sc.name, target=target)
                        runs.setdefault((sc.name, target), []).append(r)
                        log(
                            f"[{n}/{total}] {sc.name:<11} {target:<6} {r['rps']:8.1f} req/s  "
                            f"p50 {fmt(r['p50_ms'], '.3f')} ms  p99 {fmt(r['p99_ms'], '.3f')} ms"
                            f"  errors {r['errors']}"
                        )
        finally:
            fleet.stop()

        ledger = ledger_rows(home / "state.db") if "aigw" in targets else None
        tracebacks = {s.name: tb for s in fleet.servers if (tb := first_traceback(s.log))}

    results = {k: aggregate(v) for k, v in runs.items()}
    ratios, checks = compare(results, scenarios)

    rows = []
    for sc in scenarios:
        for target in targets:
            res = results[(sc.name, target)]
            cpu = res["cpu_us_per_req"]
            rows.append(
                [
                    sc.name,
                    target,
                    fmt(res["rps"], ".1f"),
                    fmt(res["p50_ms"], ".3f"),
                    fmt(res["p90_ms"], ".3f"),
                    fmt(res["p99_ms"], ".3f"),
                    str(res["errors"]),
                    fmt(cpu.get("server"), ".0f"),
                    fmt(cpu.get("upstream"), ".0f"),
                    fmt(res["loadgen_cpu_pct"], ".0f"),
                ]
            )
    print()
    print(
        table(
            [
                "scenario",
                "target",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "errors",
                "cpu µs/req",
                "upstream µs/req",
                "loadgen cpu%",
            ],
            rows,
        )
    )
    if ratios:
        print()
        print("aigw vs bare proxy")
        print(
            table(
                [
                    "scenario",
                    "",
                    "req/s ratio",
                    "added p50 ms",
                    "added p99 ms",
                    "cpu/req ratio",
                    "cpu-bound req/s ratio",
                ],
                [
                    [
                        r["scenario"],
                        "",
                        fmt(r["rps_ratio"], ".2f"),
                        fmt(r["added_p50_ms"], "+.3f"),
                        fmt(r["added_p99_ms"], "+.3f"),
                        fmt(r["cpu_us_per_req_ratio"], ".2f"),
                        fmt(r["cpu_bound_rps_ratio"], ".2f"),
                    ]
                    for r in ratios
                ],
            )
        )
    if checks:
        print()
        for c in checks:
            verdict = "PASS" if c["pass"] else "MISS"
            print(f"{verdict}  {c['scenario']:<11} {c['target']}: {c['value']}")

    error_lines = [
        f"  {sc}/{t}: {kind} x{n}: {res['error_samples'].get(kind, '')[:200]!r}"
        for (sc, t), res in results.items()
        for kind, n in res["error_kinds"].items()
    ]
    if error_lines:
        print()
        print("errors:")
        print("\n".join(error_lines))
    for name, tb in tracebacks.items():
        print()
        print(f"first traceback in the {name} log:")
        print(tb)

    ledger_info: dict[str, Any] | None = None
    if "aigw" in targets:
        answered = sum(res["total_ok"] for (_, t), res in results.items() if t == "aigw")
        print()
        if ledger is None:
            print("ledger: could not read aigw's state.db")
        else:
            total_rows, ok_rows = ledger
            ok = ok_rows == answered
            print(
                f"ledger: {total_rows} rows ({ok_rows} with status 200) for {answered} "
                f"successful aigw answers (warm-up included): {'OK' if ok else 'MISMATCH'}"
            )
            ledger_info = {"rows": total_rows, "rows_200": ok_rows, "answered": answered, "ok": ok}

    if args.json:
        doc = {
            "meta": {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "commit": git_commit(Path(__file__).resolve().parent.parent),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": len(cpus),
                "loop": loop_name(),
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            },
            "results": [{"scenario": sc, "target": t, **res} for (sc, t), res in results.items()],
            "runs": [
                {k: v for k, v in r.items() if k != "latencies_ms"}
                for rs in runs.values()
                for r in rs
            ],
            "ratios": ratios,
            "checks": checks,
            "ledger": ledger_info,
            "tracebacks": tracebacks,
        }
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        log(f"wrote {args.json}")

    failed = any(not c["pass"] for c in checks) or any(r["errors"] for r in results.values())
    if ledger_info is not None and not ledger_info["ok"]:
        failed = True
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
