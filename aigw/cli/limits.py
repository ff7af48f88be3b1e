"""Limit options shared by `aigw teams` and `aigw keys`, and how limits are shown.

Every option takes ``none`` to remove a limit (`aigw teams update web --rpm none`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from aigw.config import CACHE_MODES, Config
from aigw.config.cache import format_ttl, parse_ttl
from aigw.config.scrub import DETECTORS
from aigw.errors import AigwError
from aigw.limits.budgets import money
from aigw.model import PERIODS, PRIORITIES, SCRUB_ACTIONS, Limits, region_problem
from aigw.pricing import usd

RpmOpt = Annotated[
    str | None,
    typer.Option("--rpm", metavar="N", help="Requests per minute ('none' removes the limit)."),
]
TpmOpt = Annotated[
    str | None,
    typer.Option(
        "--tpm",
        metavar="N",
        help="Tokens per minute, prompt plus output ('none' removes the limit).",
    ),
]
ParallelOpt = Annotated[
    str | None,
    typer.Option(
        "--max-parallel",
        metavar="N",
        help="Requests in flight at once ('none' removes the limit).",
    ),
]
BudgetOpt = Annotated[
    str | None,
    typer.Option(
        "--budget",
        metavar="USD",
        help="Hard budget per period in USD, e.g. 100 or 2.50 ('none' removes it).",
    ),
]
PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period",
        metavar="day|week|month",
        help="Budget period: a calendar day, week (from Monday) or month in [budgets] "
        "timezone ('none': the [budgets] period, by default month).",
    ),
]
AlertOpt = Annotated[
    str | None,
    typer.Option(
        "--alert-at",
        metavar="PCTS",
        help="Budget alert thresholds in percent, e.g. 50,80,100 ('off': no alerts; "
        "'none': the [budgets] alert_at).",
    ),
]
PriorityOpt = Annotated[
    str | None,
    typer.Option(
        "--priority",
        metavar="high|normal|low",
        help="Place in provider quota queues; low may use only part of a quota "
        "('none': the team's, else normal).",
    ),
]
ModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--models",
        metavar="GLOBS",
        help="Comma-separated model globs allowed, e.g. 'openai/gpt-4o*,fast' ('none': any model).",
    ),
]

RegionsOpt = Annotated[
    str | None,
    typer.Option(
        "--regions",
        metavar="REGIONS",
        help="Data residency: comma-separated provider regions its calls may go to, "
        "e.g. eu,eu-west; a provider without a region is then never used ('none': any).",
    ),
]

CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache",
        metavar="off|deterministic|all",
        help="Response cache: deterministic caches calls with temperature 0 or a seed (and "
        "embeddings), all caches every cacheable call ('none': the team's, else [cache] mode).",
    ),
]
CacheTtlOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-ttl",
        metavar="DURATION",
        help="How long a cached answer is served, e.g. 10m, 1h, 7d ('none': the team's, "
        "else [cache] ttl).",
    ),
]
ScrubOpt = Annotated[
    str | None,
    typer.Option(
        "--scrub",
        metavar="DETECTOR=ACTION,...",
        help="Scrub actions overriding [scrub.actions] per detector, e.g. "
        "email=block,phone=redact (actions: redact, block, log, off; 'default' drops one "
        "override; 'none' drops all). A key's override beats its team's.",
    ),
]

_NONE = ("none", "-")


def _count(option: str, text: str) -> int | None:
    if text.lower() in _NONE:
        return None
    try:
        value = int(text)
    except ValueError:
        raise AigwError(f"{option}: not a whole number: {text!r} (or 'none')") from None
    if value < 1:
        raise AigwError(f"{option}: must be at least 1 (got {value}); 'none' removes the limit")
    return value


def parse_budget(text: str) -> int | None:
    """'100', '2.50', '$5' -> nano-USD; 'none' -> None."""
    if text.lower() in _NONE:
        return None
    try:
        value = Decimal(text.strip().lstrip("$").replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise AigwError(f"--budget: not an amount in USD: {text!r} (or 'none')") from None
    if not value.is_finite() or value < 0:
        raise AigwError(f"--budget: must be a positive amount in USD (got {text!r})")
    nano = value * 1_000_000_000
    if nano != nano.to_integral_value():
        raise AigwError(f"--budget: at most 9 decimal places (got {text!r})")
    return int(nano)


def _choice(option: str, text: str, choices: tuple[str, ...]) -> str | None:
    if text.lower() in _NONE:
        return None
    if text.lower() not in choices:
        raise AigwError(f"{option}: must be one of {', '.join(choices)} or 'none' (got {text!r})")
    return text.lower()


def _alert_at(text: str) -> tuple[int, ...] | None:
    if text.lower() in _NONE:
        return None
    if text.lower() == "off":
        return ()
    try:
        pcts = sorted({int(p) for p in text.replace("%", "").split(",") if p.strip()})
    except ValueError:
        raise AigwError(f"--alert-at: not a list of percents: {text!r} (e.g. 50,80,100)") from None
    for p in pcts:
        if not 1 <= p <= 100:
            raise AigwError(f"--alert-at: percents go from 1 to 100 (got {p})")
    return tuple(pcts)


def _models(text: str) -> tuple[str, ...] | None:
    if text.lower() in _NONE:
        return None
    globs = tuple(g.strip() for g in text.split(",") if g.strip())
    if not globs:
        raise AigwError("--models: give at least one model glob (or 'none' for any model)")
    return globs


def _regions(text: str) -> tuple[str, ...] | None:
    if text.lower() in _NONE:
        return None
    regions: list[str] = []
    for part in text.split(","):
        region = part.strip().lower()
        if not region:
            continue
        problem = region_problem(region)
        if problem is not None:
            raise AigwError(f"--regions: {problem}")
        if region not in regions:
            regions.append(region)
    if not regions:
        raise AigwError("--regions: give at least one region (or 'none' for any provider)")
    return tuple(regions)


def _cache_ttl(text: str) -> int | None:
    if text.lower() in _NONE:
        return None
    seconds = parse_ttl(text)
    if seconds is None:
        raise AigwError(f"--cache-ttl: not a duration: {text!r} (use e.g. 90s, 15m, 1h, 7d)")
    return seconds


def _scrub(
    text: str, current: tuple[tuple[str, str], ...] | None, detectors: Sequence[str]
) -> tuple[tuple[str, str], ...] | None:
    """``current`` overrides with ``text``'s applied (merged per detector)."""
    if text.strip().lower() in _NONE:
        return None
    merged = dict(current or ())
    for part in text.split(","):
        if not part.strip():
            continue
        detector, sep, action = (x.strip().lower() for x in part.partition("="))
        if not sep or not detector or not action:
            raise AigwError(
                f"--scrub: expected DETECTOR=ACTION, e.g. email=block (got {part.strip()!r})"
            )
        if detector not in detectors:
            raise AigwError(
                f"--scrub: unknown detector {detector!r}; known: {', '.join(detectors)}"
            )
        if action == "default":
            merged.pop(detector, None)
            continue
        if action not in SCRUB_ACTIONS:
            raise AigwError(
                f"--scrub: unknown action {action!r} for {detector}; use one of "
                f"{', '.join(SCRUB_ACTIONS)} (or 'default')"
            )
        merged[detector] = action
    return tuple(merged.items()) or None


def scrub_detectors() -> tuple[str, ...]:
    """The detector names --scrub accepts: the built-in ones and the config's custom ones."""
    from aigw.cli.common import load_config

    return (*DETECTORS, *load_config().scrub.custom)


def apply(
    base: Limits,
    *,
    rpm: str | None,
    tpm: str | None,
    max_parallel: str | None,
    budget: str | None,
    period: str | None,
    alert_at: str | None,
    priority: str | None,
    models: str | None,
    regions: str | None = None,
    cache: str | None = None,
    cache_ttl: str | None = None,
    scrub: str | None = None,
) -> Limits:
    """``base`` with the options that were given applied."""
    changes: dict[str, Any] = {}
    if rpm is not None:
        changes["rpm"] = _count("--rpm", rpm)
    if tpm is not None:
        changes["tpm"] = _count("--tpm", tpm)
    if max_parallel is not None:
        changes["max_parallel"] = _count("--max-parallel", max_parallel)
    if budget is not None:
        changes["budget_nusd"] = parse_budget(budget)
    if period is not None:
        changes["period"] = _choice("--period", period, PERIODS)
    if alert_at is not None:
        changes["alert_at"] = _alert_at(alert_at)
    if priority is not None:
        changes["priority"] = _choice("--priority", priority, PRIORITIES)
    if models is not None:
        changes["models"] = _models(models)
    if regions is not None:
        changes["regions"] = _regions(regions)
    if cache is not None:
        changes["cache"] = _choice("--cache", cache, CACHE_MODES)
    if cache_ttl is not None:
        changes["cache_ttl"] = _cache_ttl(cache_ttl)
    if scrub is not None:
        changes["scrub"] = _scrub(scrub, base.scrub, scrub_detectors())
    return base.replace(**changes)


def as_dict(limits: Limits, cfg: Config) -> dict[str, Any]:
    """Limits for --json: null = no limit; period and alert_at with defaults resolved."""
    budget = limits.budget_nusd
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_parallel": limits.max_parallel,
        "budget_usd": None if budget is None else float(usd(budget)),
        "budget_nusd": budget,
        "period": limits.period or cfg.budgets.period,
        "alert_at": list(limits.alert_at)
        if limits.alert_at is not None
        else list(cfg.budgets.alert_at),
        "priority": limits.priority,
        "models": None if limits.models is None else list(limits.models),
        "regions": None if limits.regions is None else list(limits.regions),
        "cache": limits.cache,
        "cache_ttl": limits.cache_ttl,
        "scrub": None if limits.scrub is None else dict(limits.scrub),
    }


def cells(limits: Limits, cfg: Config) -> list[str]:
    """Table cells: rpm, tpm, parallel, budget, alerts, priority, models, regions, cache,
    scrub."""

    def n(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    if limits.budget_nusd is None:
        budget = "-"
    else:
        budget = f"{money(limits.budget_nusd)}/{limits.period or cfg.budgets.period}"
    alerts = limits.alert_at if limits.alert_at is not None else tuple(cfg.budgets.alert_at)
    return [
        n(limits.rpm),
        n(limits.tpm),
        n(limits.max_parallel),
        budget,
        ",".join(str(p) for p in alerts) if limits.budget_nusd is not None and alerts else "-",
        limits.priority or "-",
        ",".join(limits.models) if limits.models else "-",
        ",".join(limits.regions) if limits.regions else "-",
        _cache_cell(limits),
        ",".join(f"{d}={a}" for d, a in limits.scrub) if limits.scrub else "-",
    ]


def _cache_cell(limits: Limits) -> str:
    if limits.cache is None and limits.cache_ttl is None:
        return "-"
    ttl = "" if limits.cache_ttl is None else f" {format_ttl(limits.cache_ttl)}"
    return f"{limits.cache or '-'}{ttl}"


LIMIT_HEADERS = [
    "rpm",
    "tpm",
    "parallel",
    "budget",
    "alerts %",
    "priority",
    "models",
    "regions",
    "cache",
    "scrub",
]
