"""The TOML configuration: one module per section, assembled here into :class:`Config`.

Each section module (``server.py``, ``providers.py``...) declares the section's
dataclass, its reader (with every check), its writer and the comment written above it,
as one :class:`~aigw.config.base.Section`. ``Config`` below lists the sections, one
field each, in the order the file is read and written; ``parse``, ``to_dict`` and
``render`` walk that list. Adding a section is a new module and one line in ``Config``.

Every validation message names the file, the key and the problem, e.g.
``/etc/aigw/config.toml: providers.openai.type: must be one of ...``.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

# Each section's `.field()` returns a dataclasses.field(...), which RUF009 cannot see.
# ruff: noqa: RUF009

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from aigw.config.alerts import ALERTS, AlertsConfig
from aigw.config.base import SECTION_KEY, Parsed, Reader, Section
from aigw.config.budgets import BUDGETS, BudgetsConfig, zone
from aigw.config.cache import CACHE, CACHE_MODES, CacheConfig
from aigw.config.counters import COUNTERS, CountersConfig
from aigw.config.ledger import LEDGER, LedgerConfig
from aigw.config.limits import LIMITS, LimitsConfig
from aigw.config.metrics import METRICS, MetricsConfig
from aigw.config.models import MODELS, STRATEGIES, ModelConfig, TargetConfig
from aigw.config.otel import OTEL, OtelConfig
from aigw.config.prices import PRICES, PriceConfig
from aigw.config.providers import DEFAULT_BASE_URLS, PROVIDER_TYPES, PROVIDERS, ProviderConfig
from aigw.config.quotas import QUOTAS, QuotaConfig
from aigw.config.routing import ROUTING, RoutingConfig
from aigw.config.scrub import SCRUB, ScrubConfig
from aigw.config.server import DEFAULT_PORT, SERVER, ServerConfig
from aigw.config.store import STORE, StoreConfig
from aigw.config.translation import TRANSLATION, TranslationConfig
from aigw.config.upstream import UPSTREAM, UpstreamConfig
from aigw.errors import ConfigError
from aigw.paths import PRIVATE_FILE, private_dir

__all__ = [
    "CACHE_MODES",
    "DEFAULT_BASE_URLS",
    "DEFAULT_PORT",
    "PROVIDER_TYPES",
    "SECTIONS",
    "STRATEGIES",
    "AlertsConfig",
    "BudgetsConfig",
    "CacheConfig",
    "Config",
    "CountersConfig",
    "LedgerConfig",
    "LimitsConfig",
    "MetricsConfig",
    "ModelConfig",
    "OtelConfig",
    "PriceConfig",
    "ProviderConfig",
    "QuotaConfig",
    "RoutingConfig",
    "ScrubConfig",
    "ServerConfig",
    "StoreConfig",
    "TargetConfig",
    "TranslationConfig",
    "UpstreamConfig",
    "default_config",
    "load",
    "parse",
    "render",
    "save",
    "to_dict",
    "zone",
]


@dataclass(slots=True)
class Config:
    """The whole configuration. Every field after ``path`` is a section, in file order;
    a section that refers to another (models -> providers) comes after it."""

    path: Path | None = None
    server: ServerConfig = SERVER.field()
    upstream: UpstreamConfig = UPSTREAM.field()
    routing: RoutingConfig = ROUTING.field()
    store: StoreConfig = STORE.field()
    ledger: LedgerConfig = LEDGER.field()
    metrics: MetricsConfig = METRICS.field()
    translation: TranslationConfig = TRANSLATION.field()
    providers: dict[str, ProviderConfig] = PROVIDERS.field()
    models: dict[str, ModelConfig] = MODELS.field()
    prices: dict[str, PriceConfig] = PRICES.field()
    limits: LimitsConfig = LIMITS.field()
    budgets: BudgetsConfig = BUDGETS.field()
    alerts: AlertsConfig = ALERTS.field()
    quotas: dict[str, QuotaConfig] = QUOTAS.field()
    counters: CountersConfig = COUNTERS.field()
    cache: CacheConfig = CACHE.field()
    scrub: ScrubConfig = SCRUB.field()
    otel: OtelConfig = OTEL.field()


# (table name, section) in file order, taken from Config's fields.
SECTIONS: tuple[tuple[str, Section[Any]], ...] = tuple(
    (f.name, f.metadata[SECTION_KEY]) for f in fields(Config) if SECTION_KEY in f.metadata
)


def parse(data: dict[str, Any], where: str = "config.toml", path: Path | None = None) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    top = Reader(where, data, "")
    parsed = Parsed()
    for name, section in SECTIONS:
        r = Reader(where, top.get(name, dict, {}), name)
        parsed[section] = section.read(r, parsed)
        r.done()
    top.done()
    return Config(path=path, **{name: parsed[section] for name, section in SECTIONS})


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


def to_dict(cfg: Config) -> dict[str, Any]:
    """The TOML document for ``cfg`` (defaults written out so users can see them)."""
    return {name: section.write(getattr(cfg, name)) for name, section in SECTIONS}


def render(cfg: Config) -> str:
    """TOML text for ``cfg`` with explanatory comments before each section."""
    parts = [_HEADER]
    for name, section in SECTIONS:
        value = section.write(getattr(cfg, name))
        parts.append(section.comment)
        body = tomli_w.dumps({name: value}).strip()
        parts.append(body if value else f"[{name}]")
        parts.append("")
    return "\n".join(parts)


def save(cfg: Config, path: Path) -> None:
    """Write ``cfg`` to ``path`` atomically (a sibling file, then rename over).

    A missing file gets the commented :func:`render` output. An existing one is edited
    in place (:mod:`aigw.config.edit`): only the keys that change are touched, so the
    operator's comments and layout stay, and the previous file is kept as
    ``config.toml.bak``. The new text is re-read with the normal loader before it
    replaces the file."""
    private_dir(path.parent)
    try:
        before: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        before = None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    text = render(cfg) if before is None else _edited(before, cfg, path)
    if before is not None:
        _write_private(path.with_name(path.name + ".bak"), before)
    _write_private(path, text)


def _edited(before: str, cfg: Config, path: Path) -> str:
    try:
        old = to_dict(parse(tomllib.loads(before), str(path)))
    except (tomllib.TOMLDecodeError, ConfigError):
        return render(cfg)  # nothing to keep from a file that does not load
    want = to_dict(cfg)
    comments = {name: section.comment.rstrip("\n") + "\n" for name, section in SECTIONS}
    # tomlkit only when a command changes the file: reading config does not need it.
    from tomlkit.exceptions import TOMLKitError

    from aigw.config import edit

    try:
        text = edit.update(before, old, want, comments)
        got = to_dict(parse(tomllib.loads(text), str(path)))
    except (tomllib.TOMLDecodeError, ConfigError, ValueError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: editing the file failed, left unchanged: {exc}") from exc
    if got != want:
        raise ConfigError(f"{path}: editing the file failed (result differs), left unchanged")
    return text


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # Owner-only from creation: the file may hold a webhook URL (often secret).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    if hasattr(os, "fchmod"):  # a leftover tmp file keeps its mode through O_CREAT
        os.fchmod(fd, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def default_config() -> Config:
    """What `aigw init` writes: defaults plus the offline mock provider."""
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig(name="mock", type="mock", base_url="")
    return cfg
