"""Benchmark aigw against a bare aiohttp pass-through proxy, and its translated paths.

Starts, each as its own process: a fake upstream speaking OpenAI, Anthropic and Gemini,
a bare aiohttp proxy in front of it, and `aigw serve` (auth and ledger on) in front of
it too. Then, per measurement, a separate load-generator process drives a closed-loop
load (concurrency 1 or 32, plain or streamed) and reports requests/s and latency.

Two suites:

- ``proxy``: OpenAI chat completions through aigw against the bare proxy (and the
  upstream itself), per scenario and target.
- ``translation``: aigw only, per scenario and *path* (client API -> provider type,
  e.g. ``openai->anthropic``), each path's req/s as a ratio of aigw's
  ``openai->openai`` req/s measured in the same run.

    python -m benchmarks.run                      # both suites, 10 s per measurement
    python -m benchmarks.run --duration 5 --rounds 2 --json out.json
    python -m benchmarks.run --suite proxy --scenarios c1,c32 --targets bare,aigw
    python -m benchmarks.run --suite translation --paths openai:anthropic,gemini:openai

See benchmarks/README.md for what is measured and how to read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shlex
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
from benchmarks.loadgen import CLIENTS, percentile

SUITES = ("proxy", "translation", "all")
TARGETS = ("direct", "bare", "aigw")
DEFAULT_SCENARIOS = ("c1", "c32", "c1-stream", "c32-stream")
DEFAULT_TRANSLATION_SCENARIOS = ("c32", "c32-stream")
_SCENARIO = re.compile(r"^c(\d+)(-stream)?$")

# The issue's targets for aigw against the bare proxy.
MIN_RPS_RATIO = 0.60  # at concurrency 32
MAX_ADDED_P50_MS = 1.0  # at concurrency 1
# ... and for a translated path against openai->openai ("within 15 %").
MIN_TRANSLATION_RATIO = 0.85

# aigw's providers, one per type, named after it; all of them are the fake upstream.
# The model each path asks for (PROVIDER/MODEL, all in aigw's price table).
FAMILIES = ("openai", "anthropic", "gemini")
MODELS = {
    "openai": "openai/gpt-5.4-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
PROVIDER_KEY = "sk-bench-dummy"


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    stream: bool


@dataclass(frozen=True)
class ApiPath:
    """A client API and the type of provider aigw sends the call to."""

    client: str
    provider: str

    @property
    def name(self) -> str:
        return f"{self.client}->{self.provider}"

    @property
    def model(self) -> str:
        return MODELS[self.provider]


BASELINE = ApiPath("openai", "openai")
ALL_PATHS = tuple(ApiPath(c, p) for c in FAMILIES for p in FAMILIES)
assert set(FAMILIES) == set(CLIENTS)


@dataclass(frozen=True)
class Job:
    """One measurement: a suite, a target (direct, bare, aigw) and the path it takes."""

    suite: str
    target: str
    path: ApiPath = BASELINE

    @property
    def label(self) -> str:
        return self.target if self.suite == "proxy" else f"aigw {self.path.name}"


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


def parse_paths(text: str) -> list[ApiPath]:
    """``all`` or comma-separated CLIENT->PROVIDER (or CLIENT:PROVIDER: no shell quoting)."""
    if text.strip() == "all":
        return list(ALL_PATHS)
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        client, sep, provider = item.replace("->", ":").partition(":")
        if not sep or client not in FAMILIES or provider not in FAMILIES:
            raise SystemExit(
                f"--paths: {item!r} is not CLIENT->PROVIDER or CLIENT:PROVIDER with both in "
                f"{', '.join(FAMILIES)} (e.g. 'openai->anthropic' or openai:anthropic)"
            )
        path = ApiPath(client, provider)
        if path not in out:
            out.append(path)
    if not out:
        raise SystemExit("--paths: none given")
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


def drop_counters(home: Path) -> None:
    """Delete the benchmark's keys (its prefix only) from the [counters] Redis."""
    import redis

    cfg = config_mod.load(home / "config.toml").counters
    client = redis.Redis.from_url(cfg.url)
    try:
        for k in client.scan_iter(match=cfg.prefix + "*", count=1000):
            client.delete(k)
    finally:
        client.close()


def setup_aigw_home(
    home: Path,
    upstream_url: str,
    synchronous: str,
    limits: bool = False,
    scrub: bool = True,
    counters: str = "",
    store_url: str = "",
) -> dict[str, str]:
    """Write config.toml and create a gateway key; returns the env for aigw and the key.

    ``limits``: the key and its team get rate limits, a concurrency cap and a budget,
    all far above what the load reaches, so every check runs and none refuses.
    ``scrub``: the default ``[scrub]`` actions; off: every detector off (the step is
    then a policy lookup only). ``counters``: a Redis URL for ``[counters]`` (the
    limits counted there, under a fresh key prefix; see :func:`drop_counters`).
    ``store_url``: ``[store] url`` (empty: SQLite).

    One provider per type (openai, anthropic, gemini), each named after its type and
    pointing at the fake upstream: OpenAI's base URL includes ``/v1``, the others are
    the root (aigw appends ``/v1/messages`` and ``/v1beta/models/...``).
    """
    cfg = config_mod.Config()
    cfg.ledger.synchronous = synchronous
    cfg.store.url = store_url
    if not scrub:
        cfg.scrub.actions = dict.fromkeys(cfg.scrub.actions, "off")
    for ptype in FAMILIES:
        base_url = upstream_url + "/v1" if ptype == "openai" else upstream_url
        cfg.providers[ptype] = config_mod.ProviderConfig(name=ptype, type=ptype, base_url=base_url)
    if counters:
        cfg.counters.url = counters
        cfg.counters.prefix = f"aigwbench:{os.urandom(6).hex()}:"
    config_mod.save(cfg, home / "config.toml")
    env = {
        **os.environ,
        "AIGW_HOME": str(home),
        **{f"AIGW_{ptype.upper()}_API_KEY": PROVIDER_KEY for ptype in FAMILIES},
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    limit_opts: list[str] = []
    if limits:
        limit_opts = [
            "--rpm",
            "100000000",
            "--tpm",
            "100000000000",
            "--max-parallel",
            "10000",
            "--budget",
            "1000000",
        ]
        team = subprocess.run(
            [*aigw_command(), "teams", "create", "bench", *limit_opts],
            env=env,
            capture_output=True,
            check=False,
        )
        if team.returncode != 0:
            raise SystemExit(
                f"`aigw teams create` failed:\n{team.stdout.decode()}{team.stderr.decode()}"
            )
    out = subprocess.run(
        [
            *aigw_command(),
            "keys",
            "create",
            "--team",
            "bench",
            "--app",
            "benchmark",
            "--json",
            *limit_opts,
        ],
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
    path: ApiPath = BASELINE,
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
        "--base-url",
        url,
        "--client",
        path.client,
        "--model",
        path.model,
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


def pair_with_reference(sequence: list[tuple[Job, dict[str, Any]]]) -> None:
    """Give each translation run of one (round, scenario) its neighbouring reference req/s.

    ``sequence`` is the runs in the order they were measured. A path's ``ref_rps`` is
    the mean req/s of the openai->openai runs right before and right after it, so a
    ratio compares measurements taken minutes apart at most, not across the whole run.
    """
    refs = [
        (i, r["rps"])
        for i, (job, r) in enumerate(sequence)
        if job.suite == "translation" and job.path == BASELINE
    ]
    for i, (job, r) in enumerate(sequence):
        if job.suite != "translation" or job.path == BASELINE:
            continue
        before = [rps for j, rps in refs if j < i][-1:]
        after = [rps for j, rps in refs if j > i][:1]
        near = before + after
        r["ref_rps"] = sum(near) / len(near) if near else None


def compare_translation(
    results: dict[tuple[str, Job], dict[str, Any]],
    runs: dict[tuple[str, Job], list[dict[str, Any]]],
    scenarios: list[Scenario],
    paths: list[ApiPath],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each path's req/s (and aigw CPU per request) against openai->openai's, per scenario."""
    ratios = []
    checks = []
    for sc in scenarios:
        base = results.get((sc.name, Job("translation", "aigw", BASELINE)))
        if base is None:
            continue
        base_cpu = base["cpu_us_per_req"].get("server")
        for path in paths:
            job = Job("translation", "aigw", path)
            res = results.get((sc.name, job))
            if path == BASELINE or res is None:
                continue
            # Pooled over rounds: the path's requests against what the neighbouring
            # reference runs did in the same time.
            path_runs = runs[(sc.name, job)]
            ref_requests = sum((r.get("ref_rps") or 0.0) * r["duration_s"] for r in path_runs)
            ratio = res["requests"] / ref_requests if ref_requests else float("nan")
            cpu = res["cpu_us_per_req"].get("server")
            ratios.append(
                {
                    "scenario": sc.name,
                    "path": path.name,
                    "rps": res["rps"],
                    "baseline_rps": base["rps"],
                    # against the reference runs right before and after each path run
                    "rps_ratio": ratio,
                    "rps_ratio_rounds": [
                        round(r["rps"] / r["ref_rps"], 3) if r.get("ref_rps") else None
                        for r in path_runs
                    ],
                    # against all of the scenario's reference runs, pooled
                    "rps_ratio_pooled": res["rps"] / base["rps"] if base["rps"] else None,
                    "added_p50_ms": res["p50_ms"] - base["p50_ms"],
                    "cpu_us_per_req": cpu,
                    "baseline_cpu_us_per_req": base_cpu,
                    "added_cpu_us_per_req": cpu - base_cpu if cpu and base_cpu else None,
                    "cpu_us_per_req_ratio": cpu / base_cpu if cpu and base_cpu else None,
                    # req/s ratio if aigw had its own CPU and were the bottleneck
                    "cpu_bound_rps_ratio": base_cpu / cpu if cpu and base_cpu else None,
                }
            )
            checks.append(
                {
                    "scenario": sc.name,
                    "path": path.name,
                    "target": f"{path.name} req/s within "
                    f"{1 - MIN_TRANSLATION_RATIO:.0%} of openai->openai",
                    "value": f"{ratio:.3f}",
                    "rounds": ratios[-1]["rps_ratio_rounds"],
                    "pass": ratio >= MIN_TRANSLATION_RATIO,
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
        "proxy and the fake upstream itself (suite proxy), and aigw's translated paths "
        "against its openai->openai path (suite translation). Every server and each load "
        "generator run in their own process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--suite",
        choices=SUITES,
        default="all",
        help="proxy: aigw vs the bare proxy (openai->openai). translation: aigw's paths "
        "across API families vs its openai->openai path. all: both",
    )
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each")
    ap.add_argument(
        "--scenarios",
        help="comma-separated cN (concurrency N, plain) or cN-stream (streamed), for both "
        f"suites; default {','.join(DEFAULT_SCENARIOS)} (proxy) and "
        f"{','.join(DEFAULT_TRANSLATION_SCENARIOS)} (translation)",
    )
    ap.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="suite proxy: comma-separated subset of direct,bare,aigw",
    )
    ap.add_argument(
        "--paths",
        default="all",
        help="suite translation: comma-separated CLIENT->PROVIDER or CLIENT:PROVIDER "
        f"(each one of {','.join(FAMILIES)}), or all; openai->openai, the reference, "
        "is always measured",
    )
    ap.add_argument(
        "--ref-every",
        type=int,
        default=2,
        metavar="N",
        help="suite translation: measure openai->openai first, then again after every N "
        "paths; each path is compared with the reference runs right before and after it",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every measurement; the target (and path) order alternates each round "
        "and the results are pooled (reduces drift on a shared machine)",
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
    ap.add_argument(
        "--limits",
        action="store_true",
        help="give the benchmark key and its team rate limits, a concurrency cap and a "
        "budget (set far above the load, so every check runs and none refuses)",
    )
    ap.add_argument(
        "--scrub",
        choices=("on", "off"),
        default="on",
        help="aigw's PII and secret scrubbing: on = the default [scrub] actions, off = every "
        "detector off (compare the c32 proxy ratio of the two)",
    )
    ap.add_argument(
        "--counters",
        default="",
        metavar="URL",
        help="aigw's [counters] url (e.g. redis://127.0.0.1:6379/0): limits counted in "
        "Redis under a fresh key prefix, deleted afterwards; use with --limits",
    )
    ap.add_argument(
        "--store-url",
        default="",
        metavar="URL",
        help="aigw's [store] url, e.g. postgresql://127.0.0.1/bench (an empty database; "
        "default: the SQLite state file)",
    )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state.db)")
    ap.add_argument(
        "--serve-args",
        default="",
        metavar="ARGS",
        help="extra arguments for `aigw serve`, e.g. '--log-level warning' (access log "
        "off) or '--log-format json'",
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a target is missed, a request failed or the ledger does not add up",
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


def print_proxy(
    results: dict[tuple[str, str], dict[str, Any]],
    scenarios: list[Scenario],
    targets: list[str],
    ratios: list[dict[str, Any]],
) -> None:
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


def print_translation(
    results: dict[tuple[str, Job], dict[str, Any]],
    scenarios: list[Scenario],
    paths: list[ApiPath],
    ratios: list[dict[str, Any]],
) -> None:
    by_key = {(r["scenario"], r["path"]): r for r in ratios}
    rows = []
    for sc in scenarios:
        for path in [BASELINE, *(p for p in paths if p != BASELINE)]:
            res = results.get((sc.name, Job("translation", "aigw", path)))
            if res is None:
                continue
            r = by_key.get((sc.name, path.name), {})
            cpu = res["cpu_us_per_req"]
            rows.append(
                [
                    sc.name,
                    path.name,
                    fmt(res["rps"], ".1f"),
                    "1 (ref)" if path == BASELINE else fmt(r.get("rps_ratio"), ".2f"),
                    fmt(res["p50_ms"], ".3f"),
                    fmt(res["p99_ms"], ".3f"),
                    str(res["errors"]),
                    fmt(cpu.get("server"), ".0f"),
                    "" if path == BASELINE else fmt(r.get("added_cpu_us_per_req"), "+.0f"),
                    "" if path == BASELINE else fmt(r.get("cpu_bound_rps_ratio"), ".2f"),
                    fmt(cpu.get("upstream"), ".0f"),
                    fmt(res["loadgen_cpu_pct"], ".0f"),
                ]
            )
    print()
    print("aigw across API families (client->provider type) vs openai->openai, same run")
    print(
        table(
            [
                "scenario",
                "path",
                "req/s",
                "req/s ratio",
                "p50 ms",
                "p99 ms",
                "errors",
                "aigw µs/req",
                "vs ref µs/req",
                "cpu-bound ratio",
                "upstream µs/req",
                "loadgen cpu%",
            ],
            rows,
        )
    )


def plan(
    rnd: int,
    sc: Scenario,
    proxy: list[Scenario],
    translation: list[Scenario],
    targets: list[str],
    paths: list[ApiPath],
    ref_every: int,
) -> list[Job]:
    """The measurements of one scenario in one round, in order.

    The translation suite measures the reference, openai->openai, first and again after
    every ``ref_every`` paths, so every path run has a reference run close before and
    after it (see :func:`pair_with_reference`). The order reverses every round.
    """
    jobs = [Job("proxy", t) for t in targets] if sc in proxy else []
    if sc in translation:
        ref = Job("translation", "aigw", BASELINE)
        jobs.append(ref)
        others = [Job("translation", "aigw", p) for p in paths if p != BASELINE]
        for i in range(0, len(others), ref_every):
            jobs += [*others[i : i + ref_every], ref]
    return jobs if rnd % 2 == 0 else jobs[::-1]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    suites = ("proxy", "translation") if args.suite == "all" else (args.suite,)
    proxy_sc: list[Scenario] = []
    trans_sc: list[Scenario] = []
    if args.scenarios is not None:
        given = parse_scenarios(args.scenarios)
        proxy_sc = given if "proxy" in suites else []
        trans_sc = given if "translation" in suites else []
    else:
        if "proxy" in suites:
            proxy_sc = parse_scenarios(",".join(DEFAULT_SCENARIOS))
        if "translation" in suites:
            trans_sc = parse_scenarios(",".join(DEFAULT_TRANSLATION_SCENARIOS))
    scenarios = list(dict.fromkeys([*proxy_sc, *trans_sc]))
    targets = parse_targets(args.targets) if "proxy" in suites else []
    paths = parse_paths(args.paths) if "translation" in suites else []
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.ref_every < 1:
        raise SystemExit("--duration must be > 0, --warmup >= 0, --rounds and --ref-every >= 1")
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpus: set[int] | None = None
    other_cpus: set[int] | None = None
    if args.pin == "split":
        if len(cpus) < 2:
            raise SystemExit("--pin split needs at least 2 CPUs")
        proxy_cpus, other_cpus = {cpus[0]}, set(cpus[1:])
    use_aigw = "aigw" in targets or "translation" in suites

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
            if use_aigw:
                env = setup_aigw_home(
                    home,
                    upstream.url,
                    args.ledger_sync,
                    args.limits,
                    args.scrub == "on",
                    counters=args.counters,
                    store_url=args.store_url,
                )
                key = env.pop("AIGW_BENCH_KEY")
                aigw = fleet.start(
                    "aigw",
                    [
                        *aigw_command(),
                        "serve",
                        "--port",
                        str(aigw_port),
                        *shlex.split(args.serve_args),
                    ],
                    f"http://127.0.0.1:{aigw_port}",
                    env=env,
                    cpus=proxy_cpus,
                )
                wait_ready(aigw, "/readyz")
                servers["aigw"] = aigw

            log(
                f"aigw benchmark ({', '.join(suites)}): {len(cpus)} CPUs, loop {loop_name()}, "
                f"pin {args.pin}, {args.warmup:g} s warm-up + {args.duration:g} s per run, "
                f"{args.rounds} round(s)"
            )
            runs: dict[tuple[str, Job], list[dict[str, Any]]] = {}
            sequences: dict[tuple[int, str], list[tuple[Job, dict[str, Any]]]] = {}
            schedule = [
                (rnd, sc, job)
                for rnd in range(args.rounds)
                for sc in scenarios
                for job in plan(rnd, sc, proxy_sc, trans_sc, targets, paths, args.ref_every)
            ]
            for n, (rnd, sc, job) in enumerate(schedule, 1):
                server = servers[job.target]
                watch = {"server": server.proc.pid}
                if job.target != "direct":
                    watch["upstream"] = upstream.proc.pid
                r = measure(
                    server.url,
                    sc,
                    path=job.path,
                    key=key if job.target == "aigw" else None,
                    warmup=args.warmup,
                    duration=args.duration,
                    watch=watch,
                    cpus=other_cpus,
                )
                r.update(
                    round=rnd + 1,
                    suite=job.suite,
                    scenario=sc.name,
                    target=job.target,
                    path=job.path.name,
                )
                runs.setdefault((sc.name, job), []).append(r)
                sequences.setdefault((rnd, sc.name), []).append((job, r))
                log(
                    f"[{n}/{len(schedule)}] {sc.name:<11} {job.label:<25} "
                    f"{r['rps']:8.1f} req/s  p50 {fmt(r['p50_ms'], '.3f')} ms  "
                    f"p99 {fmt(r['p99_ms'], '.3f')} ms  errors {r['errors']}"
                )
        finally:
            fleet.stop()
            if use_aigw and args.counters:
                drop_counters(home)

        ledger = ledger_rows(home / "state.db") if use_aigw else None
        tracebacks = {s.name: tb for s in fleet.servers if (tb := first_traceback(s.log))}

    results = {k: aggregate(v) for k, v in runs.items()}
    proxy_results = {
        (sc, job.target): res for (sc, job), res in results.items() if job.suite == "proxy"
    }
    ratios, checks = compare(proxy_results, proxy_sc)
    for sequence in sequences.values():
        pair_with_reference(sequence)
    trans_ratios, trans_checks = compare_translation(results, runs, trans_sc, paths)

    if proxy_sc:
        print_proxy(proxy_results, proxy_sc, targets, ratios)
    if trans_sc:
        print_translation(results, trans_sc, paths, trans_ratios)
    if checks or trans_checks:
        print()
        for c in [*checks, *trans_checks]:
            verdict = "PASS" if c["pass"] else "MISS"
            rounds = c.get("rounds") or []
            spread = (
                " (rounds: " + ", ".join(fmt(x, ".2f") for x in rounds) + ")"
                if len(rounds) > 1
                else ""
            )
            print(f"{verdict}  {c['scenario']:<11} {c['target']}: {c['value']}{spread}")

    error_lines = [
        f"  {sc}/{job.label}: {kind} x{n}: {res['error_samples'].get(kind, '')[:200]!r}"
        for (sc, job), res in results.items()
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
    if use_aigw:
        answered = sum(res["total_ok"] for (_, job), res in results.items() if job.target == "aigw")
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
            "results": [
                {
                    "suite": job.suite,
                    "scenario": sc,
                    "target": job.target,
                    "path": job.path.name,
                    **res,
                }
                for (sc, job), res in results.items()
            ],
            "runs": [
                {k: v for k, v in r.items() if k != "latencies_ms"}
                for rs in runs.values()
                for r in rs
            ],
            "ratios": ratios,
            "translation_ratios": trans_ratios,
            "checks": [*checks, *trans_checks],
            "ledger": ledger_info,
            "tracebacks": tracebacks,
        }
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        log(f"wrote {args.json}")

    failed = any(not c["pass"] for c in [*checks, *trans_checks]) or any(
        r["errors"] for r in results.values()
    )
    if ledger_info is not None and not ledger_info["ok"]:
        failed = True
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
