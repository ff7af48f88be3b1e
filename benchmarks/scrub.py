"""How long scrubbing one prompt takes: a 4 KB chat prompt, no findings and ten findings.

    python -m benchmarks.scrub                 # 2000 runs each, median and p90 in ms
    python -m benchmarks.scrub --runs 5000 --json out.json

What is timed is the scrub step's work on one request: the request's texts visited
(:mod:`aigw.scrub.visit`) and scanned by every detector under the default actions
with email and phone redacted too (so each finding is replaced by a placeholder).
The issue's targets: a median under 0.2 ms with no findings and under 0.5 ms with
ten. Phone validation is memoised (a conversation resends its history every turn);
``ten findings, cold`` clears that memo before each run, the worst case.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aigw.config.scrub import DEFAULT_ACTIONS
from aigw.scrub import detectors
from aigw.scrub.detectors import Scanner
from aigw.scrub.redact import Redactor, make_policy
from aigw.scrub.visit import visit

TARGETS_MS = {"none": 0.2, "ten": 0.5}

# Prose and code of the kind prompts carry: numbers, versions, dates, colons, but
# nothing any detector should report.
_TEXT = (
    "Please review the following function and explain what it does. It was written in "
    "2023 for version 3.2 of the service, see section 4.1 of the design note: the "
    "handler reads the request, checks the user's permissions, and writes 12 rows to "
    "the audit table. Note: retries happen at most 5 times with a 250 ms backoff. "
    "def handle(request): user = request.user; if not user.allowed('write'): raise "
    "Forbidden() ; rows = build_rows(request.items[:12]) ; db.insert_many(rows) ; "
    "return {'ok': True, 'count': len(rows)} # TODO(2024-03-01): add metrics. "
)
_WORDS = _TEXT.split()

FINDINGS = [
    "alice.smith@example.com",
    "+1 415-555-2671",
    "4111 1111 1111 1111",
    "536-90-4399",
    "DE89 3704 0044 0532 0130 00",
    "192.168.10.20",
    "sk-proj-abc123DEF456ghi789JKL012mno345pqr",
    "2001:db8::1",
    "bob@corp.example.org",
    "(212) 555-0187",
]


def prompt(size: int, findings: list[str], seed: int = 7) -> str:
    rnd = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        w = rnd.choice(_WORDS)
        words.append(w)
        length += len(w) + 1
    step = max(1, len(words) // (len(findings) + 1))
    for i, f in enumerate(findings):
        words.insert((i + 1) * step + i, f)
    text = " ".join(words)
    return text[: size + sum(len(f) + 1 for f in findings)]


def body(text: str) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a careful code reviewer."},
            {"role": "user", "content": text},
        ],
    }


def time_one(
    scanner: Scanner, request: dict[str, Any], runs: int, cold: bool
) -> tuple[list[float], int]:
    policy = make_policy({**DEFAULT_ACTIONS, "email": "redact", "phone": "redact"})
    samples: list[float] = []
    found = 0
    for _ in range(runs):
        b = copy.deepcopy(request)
        if cold:
            detectors._phone_ok.cache_clear()
        t0 = time.perf_counter()
        red = Redactor(scanner, policy)
        visit("chat.completions", b, red.text)
        samples.append((time.perf_counter() - t0) * 1000)
        found = sum(red.counts.values())
    return samples, found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scrub", description=__doc__)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096, help="prompt bytes besides findings")
    ap.add_argument("--json", type=Path, metavar="FILE")
    args = ap.parse_args(argv)
    scanner = Scanner()
    cases = {
        "none": (body(prompt(args.size, [])), False),
        "ten": (body(prompt(args.size, FINDINGS)), False),
        "ten, cold": (body(prompt(args.size, FINDINGS)), True),
    }
    rows = {}
    failed = False
    for name, (request, cold) in cases.items():
        time_one(scanner, request, 50, cold)  # warm-up (imports phonenumbers)
        samples, found = time_one(scanner, request, args.runs, cold)
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else ("PASS" if median < target else "FAIL")
        failed = failed or verdict == "FAIL"
        rows[name] = {"findings": found, "median_ms": median, "p90_ms": p90, "target_ms": target}
        goal = f"< {target} ms" if target is not None else ""
        print(
            f"{name:<10} findings {found:>2}  median {median:.3f} ms  p90 {p90:.3f} ms  "
            f"{goal} {verdict}".rstrip()
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
