"""The TOML configuration: schema as dataclasses, load (tomllib), save (tomli-w), validate.

Every validation message names the file, the key and the problem, e.g.
``/etc/aigw/config.toml: providers.openai.type: must be one of ...``.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from aigw.errors import ConfigError

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
        cfg.models[name] = _model(where, name, raw, cfg.providers)
    for name, raw in top.get("prices", dict, {}).items():
        cfg.prices[name] = _price(where, name, raw)
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
    "server": "# Where `aigw serve` listens; max_request_mb caps a request body.",
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
}


def to_dict(cfg: Config) -> dict[str, Any]:
    """The TOML document for ``cfg`` (defaults written out so users can see them)."""
    doc: dict[str, Any] = {
        "server": {
            "host": cfg.server.host,
            "port": cfg.server.port,
            "max_request_mb": cfg.server.max_request_mb,
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(cfg), encoding="utf-8")
    tmp.replace(path)


def default_config() -> Config:
    """What `aigw init` writes: defaults plus the offline mock provider."""
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig(name="mock", type="mock", base_url="")
    return cfg
