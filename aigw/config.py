"""The TOML configuration: schema as dataclasses, load (tomllib), save (tomli-w), validate.

Every validation message names the file, the key and the problem, e.g.
``/etc/aigw/config.toml: providers.openai.type: must be one of ...``.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli_w

from aigw.errors import ConfigError
from aigw.formats.validate import model_problem
from aigw.paths import PRIVATE_FILE, private_dir

PROVIDER_TYPES = ("openai", "anthropic", "gemini", "mock")

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mock": "",
}

DEFAULT_PORT = 8787


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_request_mb: float = 32.0
    # On SIGTERM: seconds to let calls in flight finish before they are cut (and
    # recorded with estimated usage). Keep it below the supervisor's kill timeout.
    drain_seconds: float = 30.0
    # Seconds a client has to send a request's headers, from connecting or from the
    # end of its previous response (so an idle keep-alive connection closes too).
    header_timeout: float = 10.0
    # Seconds a client has to send a request's body once its headers are in.
    body_timeout: float = 60.0


@dataclass(slots=True)
class UpstreamConfig:
    """Timeouts (seconds) for calls to providers."""

    connect_timeout: float = 10.0
    # Until the response headers arrive. Non-streamed calls send headers only after
    # the whole answer is generated, so this must cover a long generation.
    first_byte_timeout: float = 300.0
    # Longest silence allowed between two chunks of a streamed answer.
    idle_timeout: float = 120.0


@dataclass(slots=True)
class LedgerConfig:
    # "normal": a committed row survives a crash of aigw (kill -9), not of the OS.
    # "full": it survives power loss too, at the price of an fsync per group commit.
    synchronous: str = "normal"


@dataclass(slots=True)
class TranslationConfig:
    """How requests are translated between API families."""

    # A parameter the target cannot honour and whose loss would change the meaning
    # (n > 1, logprobs...): True rejects the request with a 400, False drops it with
    # an x-aigw-warning header. Harmless ones (seed, user...) are always dropped.
    strict: bool = True
    # Anthropic requires max_tokens; used when an OpenAI or Gemini client sends none.
    default_max_tokens: int = 4096


@dataclass(slots=True)
class LimitsConfig:
    """How rate limits and provider quotas behave (the limits are set per team and key)."""

    # Share of a per-minute limit that may be spent at once: 1.0 lets a full minute's
    # allowance through in a burst (then it refills smoothly); 0.1 allows six seconds'
    # worth at once.
    burst: float = 1.0
    # Output tokens counted up front against tokens-per-minute limits and quotas for a
    # request without max_tokens (settled to the real count when it ends).
    default_output_tokens: int = 1024
    # Longest wait in a provider quota's priority queue before a 429.
    queue_max_wait: float = 30.0
    # Share of a provider quota low-priority requests may use.
    low_priority_share: float = 0.5
    # Seconds between batched writes of the counters to the state database.
    persist_interval: float = 1.0


@dataclass(slots=True)
class BudgetsConfig:
    """Calendar and worst-case rules for the hard budgets of teams and keys."""

    # Budget periods are calendar days, ISO weeks (from Monday) or months here.
    timezone: str = "UTC"
    # Period of a budget set without --period.
    period: str = "month"
    # Alert thresholds (percent of the budget) of a budget set without --alert-at.
    alert_at: list[int] = field(default_factory=lambda: [50, 80, 100])
    # A model with no known price under a budget: "refuse" (its cost cannot be
    # checked) or "allow" (it counts as $0).
    unpriced: str = "refuse"
    # Worst-case output tokens when neither the request nor the price table bounds them.
    max_output_tokens: int = 32768
    # Obsolete: the reservation now uses an upper bound of the prompt's tokens (one per
    # byte of text), which needs no margin. Still accepted so older configs load.
    prompt_margin: float = 1.5


@dataclass(slots=True)
class AlertsConfig:
    """Where budget alerts go besides the log (and `aigw report`)."""

    # JSON POST with a Slack-compatible "text" field; "" = log only. The environment
    # variable AIGW_ALERTS_WEBHOOK_URL overrides it (webhook URLs are often secret).
    webhook_url: str = ""
    timeout: float = 10.0  # seconds per attempt
    retries: int = 5  # further attempts after a failure, with exponential backoff
    queue_size: int = 1000  # alerts waiting for delivery; more are logged and dropped


@dataclass(slots=True)
class QuotaConfig:
    """``[quotas."PROVIDER"]`` or ``[quotas."PROVIDER/MODEL"]``: the org's upstream quota."""

    name: str
    rpm: int | None = None
    tpm: int | None = None

    @property
    def provider(self) -> str:
        return self.name.partition("/")[0]

    @property
    def model(self) -> str | None:
        return self.name.partition("/")[2] or None


@dataclass(slots=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str
    # Extra headers and query parameters sent with every call (e.g. Azure's
    # ``api-version``); never put secrets here.
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    # Header carrying the key, when not the type's default (Azure: "api-key").
    auth_header: str | None = None


@dataclass(slots=True)
class ModelConfig:
    """``[models.NAME]``: a public model name mapped to a provider and upstream model."""

    name: str
    provider: str
    model: str


@dataclass(slots=True)
class PriceConfig:
    """A per-model price override, USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(slots=True)
class Config:
    path: Path | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    translation: TranslationConfig = field(default_factory=TranslationConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    prices: dict[str, PriceConfig] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    budgets: BudgetsConfig = field(default_factory=BudgetsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    quotas: dict[str, QuotaConfig] = field(default_factory=dict)


# -- validation helpers ---------------------------------------------------------------


class _Reader:
    """Reads one table, checking types and rejecting unknown keys."""

    def __init__(self, where: str, table: object, dotted: str) -> None:
        self.where = where
        self.dotted = dotted
        if not isinstance(table, dict):
            self.fail("", "must be a table")
        self.table: dict[str, Any] = table  # type: ignore[assignment]
        self.seen: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        name = f"{self.dotted}.{key}" if key and self.dotted else (key or self.dotted)
        raise ConfigError(f"{self.where}: {name}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__.replace("str", "string") for k in kinds)
            self.fail(key, f"must be a {names} (got {value!r})")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value: float = self.get(key, float, default)
        if not math.isfinite(value) or value < minimum:
            self.fail(key, f"must be a number >= {minimum:g} (got {value!r})")
        return value

    def strings(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(v, str):
                self.fail(f"{key}.{k}", f"must be a string (got {v!r})")
        return dict(value)

    def done(self) -> None:
        for key in self.table:
            if key not in self.seen:
                self.fail(key, "unknown setting")


def _server(where: str, raw: object) -> ServerConfig:
    r = _Reader(where, raw, "server")
    d = ServerConfig()
    port = r.get("port", int, d.port)
    if not 0 <= port <= 65535:
        r.fail("port", f"must be between 0 and 65535 (got {port})")
    cfg = ServerConfig(
        host=r.get("host", str, d.host),
        port=port,
        max_request_mb=r.number("max_request_mb", d.max_request_mb, minimum=0.001),
        drain_seconds=r.number("drain_seconds", d.drain_seconds),
        header_timeout=r.number("header_timeout", d.header_timeout, minimum=0.1),
        body_timeout=r.number("body_timeout", d.body_timeout, minimum=0.1),
    )
    r.done()
    return cfg


def _upstream(where: str, raw: object) -> UpstreamConfig:
    r = _Reader(where, raw, "upstream")
    d = UpstreamConfig()
    cfg = UpstreamConfig(
        connect_timeout=r.number("connect_timeout", d.connect_timeout, minimum=0.001),
        first_byte_timeout=r.number("first_byte_timeout", d.first_byte_timeout, minimum=0.001),
        idle_timeout=r.number("idle_timeout", d.idle_timeout, minimum=0.001),
    )
    r.done()
    return cfg


def _ledger(where: str, raw: object) -> LedgerConfig:
    r = _Reader(where, raw, "ledger")
    sync = r.get("synchronous", str, "normal")
    if sync not in ("normal", "full"):
        r.fail("synchronous", f'must be "normal" or "full" (got {sync!r})')
    r.done()
    return LedgerConfig(synchronous=sync)


def _translation(where: str, raw: object) -> TranslationConfig:
    r = _Reader(where, raw, "translation")
    d = TranslationConfig()
    cfg = TranslationConfig(
        strict=r.get("strict", bool, d.strict),
        default_max_tokens=r.get("default_max_tokens", int, d.default_max_tokens),
    )
    if cfg.default_max_tokens < 1:
        r.fail("default_max_tokens", f"must be at least 1 (got {cfg.default_max_tokens})")
    r.done()
    return cfg


def _limits(where: str, raw: object) -> LimitsConfig:
    r = _Reader(where, raw, "limits")
    d = LimitsConfig()
    cfg = LimitsConfig(
        burst=r.number("burst", d.burst, minimum=0.001),
        default_output_tokens=r.get("default_output_tokens", int, d.default_output_tokens),
        queue_max_wait=r.number("queue_max_wait", d.queue_max_wait),
        low_priority_share=r.number("low_priority_share", d.low_priority_share, minimum=0.01),
        persist_interval=r.number("persist_interval", d.persist_interval, minimum=0.05),
    )
    if cfg.burst > 1:
        r.fail("burst", f"must be at most 1 (a whole minute's allowance; got {cfg.burst:g})")
    if cfg.low_priority_share > 1:
        r.fail("low_priority_share", f"must be at most 1 (got {cfg.low_priority_share:g})")
    if cfg.default_output_tokens < 0:
        r.fail("default_output_tokens", f"must be >= 0 (got {cfg.default_output_tokens})")
    r.done()
    return cfg


def _budgets(where: str, raw: object) -> BudgetsConfig:
    r = _Reader(where, raw, "budgets")
    d = BudgetsConfig()
    tz = r.get("timezone", str, d.timezone)
    try:
        zone(tz)
    except ValueError:
        r.fail("timezone", f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)")
    period = r.get("period", str, d.period)
    if period not in ("day", "week", "month"):
        r.fail("period", f'must be "day", "week" or "month" (got {period!r})')
    alert_at = r.get("alert_at", list, d.alert_at)
    for pct in alert_at:
        if isinstance(pct, bool) or not isinstance(pct, int) or not 1 <= pct <= 100:
            r.fail("alert_at", f"must be a list of percents from 1 to 100 (got {pct!r})")
    unpriced = r.get("unpriced", str, d.unpriced)
    if unpriced not in ("refuse", "allow"):
        r.fail("unpriced", f'must be "refuse" or "allow" (got {unpriced!r})')
    cfg = BudgetsConfig(
        timezone=tz,
        period=period,
        alert_at=sorted(set(alert_at)),
        unpriced=unpriced,
        max_output_tokens=r.get("max_output_tokens", int, d.max_output_tokens),
        prompt_margin=r.number("prompt_margin", d.prompt_margin, minimum=1.0),
    )
    if cfg.max_output_tokens < 1:
        r.fail("max_output_tokens", f"must be at least 1 (got {cfg.max_output_tokens})")
    r.done()
    return cfg


def _alerts(where: str, raw: object) -> AlertsConfig:
    r = _Reader(where, raw, "alerts")
    d = AlertsConfig()
    cfg = AlertsConfig(
        webhook_url=r.get("webhook_url", str, d.webhook_url),
        timeout=r.number("timeout", d.timeout, minimum=0.001),
        retries=r.get("retries", int, d.retries),
        queue_size=r.get("queue_size", int, d.queue_size),
    )
    if cfg.webhook_url and not cfg.webhook_url.startswith(("http://", "https://")):
        r.fail("webhook_url", "must start with http:// or https://")
    if not 0 <= cfg.retries <= 20:
        r.fail("retries", f"must be between 0 and 20 (got {cfg.retries})")
    if cfg.queue_size < 1:
        r.fail("queue_size", f"must be at least 1 (got {cfg.queue_size})")
    r.done()
    return cfg


def _quota(where: str, name: str, raw: object, providers: dict[str, ProviderConfig]) -> QuotaConfig:
    r = _Reader(where, raw, f"quotas.{name}")
    provider, sep, model = name.partition("/")
    if provider not in providers or (sep and not model):
        known = ", ".join(sorted(providers)) or "none configured"
        r.fail("", f"must be PROVIDER or PROVIDER/MODEL of a configured provider (known: {known})")
    cfg = QuotaConfig(name=name, rpm=r.get("rpm", int, None), tpm=r.get("tpm", int, None))
    for key in ("rpm", "tpm"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            r.fail(key, f"must be at least 1 (got {value})")
    if cfg.rpm is None and cfg.tpm is None:
        r.fail("", "sets neither rpm nor tpm")
    r.done()
    return cfg


def zone(name: str) -> tzinfo:
    """The time zone ``name``; ValueError when unknown. UTC works without tzdata."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name.upper() == "UTC":
            return UTC
        raise ValueError(name) from None


def _provider(where: str, name: str, raw: object) -> ProviderConfig:
    r = _Reader(where, raw, f"providers.{name}")
    ptype = r.get("type", str, None)
    if ptype is None:
        r.fail("type", f"is required (one of {', '.join(PROVIDER_TYPES)})")
    if ptype not in PROVIDER_TYPES:
        r.fail("type", f"must be one of {', '.join(PROVIDER_TYPES)} (got {ptype!r})")
    base_url = r.get("base_url", str, DEFAULT_BASE_URLS[ptype]).rstrip("/")
    if ptype != "mock" and not base_url.startswith(("http://", "https://")):
        r.fail("base_url", f"must start with http:// or https:// (got {base_url!r})")
    cfg = ProviderConfig(
        name=name,
        type=ptype,
        base_url=base_url,
        headers=r.strings("headers"),
        query=r.strings("query"),
        auth_header=r.get("auth_header", str, None),
    )
    r.done()
    return cfg


def _model(where: str, name: str, raw: object, providers: dict[str, ProviderConfig]) -> ModelConfig:
    r = _Reader(where, raw, f"models.{name}")
    provider = r.get("provider", str, None)
    model = r.get("model", str, None)
    if provider is None:
        r.fail("provider", "is required")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none configured"
        r.fail("provider", f"names no configured provider (got {provider!r}; known: {known})")
    if not model:
        r.fail("model", "is required (the provider's model name)")
    r.done()
    return ModelConfig(name=name, provider=provider, model=model)


def _price(where: str, name: str, raw: object) -> PriceConfig:
    r = _Reader(where, raw, f"prices.{name}")
    for required in ("input", "output"):
        if required not in r.table:
            r.fail(required, "is required (USD per million tokens)")
    cfg = PriceConfig(
        input=r.number("input", 0.0),
        output=r.number("output", 0.0),
        cached_input=r.number("cached_input", -1.0) if "cached_input" in r.table else None,
        cache_write=r.number("cache_write", -1.0) if "cache_write" in r.table else None,
    )
    r.done()
    return cfg


def parse(data: dict[str, Any], where: str = "config.toml", path: Path | None = None) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    top = _Reader(where, data, "")
    cfg = Config(path=path)
    cfg.server = _server(where, top.get("server", dict, {}))
    cfg.upstream = _upstream(where, top.get("upstream", dict, {}))
    cfg.ledger = _ledger(where, top.get("ledger", dict, {}))
    cfg.translation = _translation(where, top.get("translation", dict, {}))
    for name, raw in top.get("providers", dict, {}).items():
        cfg.providers[name] = _provider(where, name, raw)
    for name, raw in top.get("models", dict, {}).items():
        if "/" in name:
            top.fail(
                f"models.{name}", "a model alias may not contain '/' (reserved for PROVIDER/MODEL)"
            )
        problem = model_problem(name)
        if problem is not None:  # clients could never ask for it
            top.fail(f"models.{name}", f"not a valid model name: {problem}")
        cfg.models[name] = _model(where, name, raw, cfg.providers)
    for name, raw in top.get("prices", dict, {}).items():
        cfg.prices[name] = _price(where, name, raw)
    cfg.limits = _limits(where, top.get("limits", dict, {}))
    cfg.budgets = _budgets(where, top.get("budgets", dict, {}))
    cfg.alerts = _alerts(where, top.get("alerts", dict, {}))
    for name, raw in top.get("quotas", dict, {}).items():
        cfg.quotas[name] = _quota(where, name, raw, cfg.providers)
    top.done()
    return cfg


def load(path: Path) -> Config:
    """Load and validate ``path``; a missing file gives the defaults."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return Config(path=path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse(data, str(path), path)


# -- writing -------------------------------------------------------------------------

_HEADER = """\
# aigw configuration (see `aigw --help` and `man aigw`).
#
# Provider API keys never go in this file. aigw looks for a provider's key in
#   1. the environment variable AIGW_<NAME>_API_KEY
#   2. the systemd credential $CREDENTIALS_DIRECTORY/aigw-<name>
#   3. the OS keyring (service "aigw"), set with `aigw providers set-key NAME`
"""

_COMMENTS = {
    "server": (
        "# Where `aigw serve` listens; max_request_mb caps a request body. A client has\n"
        "# header_timeout seconds to send a request's headers (from connecting, or from\n"
        "# its previous response: idle keep-alive connections close then too) and\n"
        "# body_timeout seconds to send its body; slower connections are closed. On\n"
        "# SIGTERM the server stops accepting connections and lets calls in flight\n"
        "# finish for up to drain_seconds; calls still running then are cut and\n"
        "# recorded with estimated usage. Keep it below your supervisor's kill timeout\n"
        "# (Kubernetes' terminationGracePeriodSeconds, `docker stop -t`, systemd's\n"
        "# TimeoutStopSec)."
    ),
    "upstream": (
        "# Timeouts in seconds for calls to providers: connecting, waiting for the first\n"
        "# byte of the answer, and the longest silence inside a streamed answer."
    ),
    "ledger": (
        '# synchronous = "normal": every answered request\'s cost row survives a crash of\n'
        '# aigw; "full" also survives power loss (an fsync per group commit).'
    ),
    "translation": (
        "# Across API families (e.g. an OpenAI client, an Anthropic provider): strict = true\n"
        "# rejects a request with a parameter the target cannot honour when dropping it\n"
        "# would change the answer (n > 1, logprobs); false drops it with an x-aigw-warning\n"
        "# header. default_max_tokens is sent to Anthropic when a client sets no limit."
    ),
    "providers": (
        "# Providers: `aigw providers add NAME --type openai|anthropic|gemini|mock`.\n"
        '# Clients reach one as model "NAME/MODEL".'
    ),
    "models": (
        '# Model aliases: [models.NAME] provider = "P", model = "M" sends model NAME\n'
        "# to provider P as upstream model M."
    ),
    "prices": (
        '# Price overrides, USD per million tokens: [prices."MODEL"] or\n'
        '# [prices."PROVIDER/MODEL"] with input, output, cached_input, cache_write.'
    ),
    "limits": (
        "# Rate limits are set per team and key (`aigw teams create NAME --rpm 60`).\n"
        "# burst: share of a minute's allowance usable at once (1.0 = all of it, then a\n"
        "# smooth refill). default_output_tokens: counted against tokens-per-minute\n"
        "# limits up front for a request without max_tokens (settled to the real count).\n"
        "# Provider quotas: a request waits at most queue_max_wait seconds, in priority\n"
        "# order, then gets a 429; low priority may use only low_priority_share of a quota.\n"
        "# Counters are written to the state database every persist_interval seconds."
    ),
    "budgets": (
        "# Hard budgets (`aigw teams create NAME --budget 100 --period month`) count\n"
        "# calendar periods in this time zone; weeks start on Monday. A request is refused\n"
        "# when its worst case would pass the budget: the prompt at one token per byte of\n"
        "# text (a flat allowance per image), at most the model's context window, plus\n"
        "# max_tokens (or the model's maximum output, else max_output_tokens).\n"
        '# unpriced = "refuse" refuses models with no known price under a budget; "allow"\n'
        "# counts them as $0. alert_at: default alert thresholds in percent."
    ),
    "alerts": (
        "# Budget alerts are logged, flagged in `aigw report` and, with webhook_url, POSTed\n"
        '# as JSON with a Slack-compatible "text" field (retried with backoff, never\n'
        "# blocking requests). AIGW_ALERTS_WEBHOOK_URL overrides webhook_url."
    ),
    "quotas": (
        '# The org\'s upstream quotas: [quotas."PROVIDER"] or [quotas."PROVIDER/MODEL"]\n'
        "# with rpm and/or tpm. When one is used up requests queue by priority (see\n"
        "# [limits]) instead of failing upstream; an upstream 429 pauses that model for\n"
        "# its Retry-After."
    ),
}


def to_dict(cfg: Config) -> dict[str, Any]:
    """The TOML document for ``cfg`` (defaults written out so users can see them)."""
    doc: dict[str, Any] = {
        "server": {
            "host": cfg.server.host,
            "port": cfg.server.port,
            "max_request_mb": cfg.server.max_request_mb,
            "drain_seconds": cfg.server.drain_seconds,
            "header_timeout": cfg.server.header_timeout,
            "body_timeout": cfg.server.body_timeout,
        },
        "upstream": {
            "connect_timeout": cfg.upstream.connect_timeout,
            "first_byte_timeout": cfg.upstream.first_byte_timeout,
            "idle_timeout": cfg.upstream.idle_timeout,
        },
        "ledger": {"synchronous": cfg.ledger.synchronous},
        "translation": {
            "strict": cfg.translation.strict,
            "default_max_tokens": cfg.translation.default_max_tokens,
        },
    }
    providers: dict[str, Any] = {}
    for p in cfg.providers.values():
        entry: dict[str, Any] = {"type": p.type}
        if p.base_url:
            entry["base_url"] = p.base_url
        if p.headers:
            entry["headers"] = p.headers
        if p.query:
            entry["query"] = p.query
        if p.auth_header:
            entry["auth_header"] = p.auth_header
        providers[p.name] = entry
    doc["providers"] = providers
    doc["models"] = {
        m.name: {"provider": m.provider, "model": m.model} for m in cfg.models.values()
    }
    prices: dict[str, Any] = {}
    for name, pr in cfg.prices.items():
        price: dict[str, Any] = {"input": pr.input, "output": pr.output}
        if pr.cached_input is not None:
            price["cached_input"] = pr.cached_input
        if pr.cache_write is not None:
            price["cache_write"] = pr.cache_write
        prices[name] = price
    doc["prices"] = prices
    lim, bud, al = cfg.limits, cfg.budgets, cfg.alerts
    doc["limits"] = {
        "burst": lim.burst,
        "default_output_tokens": lim.default_output_tokens,
        "queue_max_wait": lim.queue_max_wait,
        "low_priority_share": lim.low_priority_share,
        "persist_interval": lim.persist_interval,
    }
    doc["budgets"] = {
        "timezone": bud.timezone,
        "period": bud.period,
        "alert_at": list(bud.alert_at),
        "unpriced": bud.unpriced,
        "max_output_tokens": bud.max_output_tokens,
    }
    doc["alerts"] = {
        "webhook_url": al.webhook_url,
        "timeout": al.timeout,
        "retries": al.retries,
        "queue_size": al.queue_size,
    }
    quotas: dict[str, Any] = {}
    for name, q in cfg.quotas.items():
        quota: dict[str, Any] = {}
        if q.rpm is not None:
            quota["rpm"] = q.rpm
        if q.tpm is not None:
            quota["tpm"] = q.tpm
        quotas[name] = quota
    doc["quotas"] = quotas
    return doc


def render(cfg: Config) -> str:
    """TOML text for ``cfg`` with explanatory comments before each section."""
    parts = [_HEADER]
    for section, value in to_dict(cfg).items():
        parts.append(_COMMENTS[section])
        body = tomli_w.dumps({section: value}).strip()
        parts.append(body if value else f"[{section}]")
        parts.append("")
    return "\n".join(parts)


def save(cfg: Config, path: Path) -> None:
    """Write ``cfg`` atomically (write a sibling file, then rename over)."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    # Owner-only from creation: the file may hold a webhook URL (often secret).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    if hasattr(os, "fchmod"):  # a leftover tmp file keeps its mode through O_CREAT
        os.fchmod(fd, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render(cfg))
    tmp.replace(path)


def default_config() -> Config:
    """What `aigw init` writes: defaults plus the offline mock provider."""
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig(name="mock", type="mock", base_url="")
    return cfg
