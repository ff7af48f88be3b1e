"""``[quotas."PROVIDER"]`` and ``[quotas."PROVIDER/MODEL"]``: the org's upstream quotas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Parsed, Reader, named
from aigw.config.providers import PROVIDERS


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


def _read(r: Reader, name: str, parsed: Parsed) -> QuotaConfig:
    providers = parsed[PROVIDERS]
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
    return cfg


def _write(q: QuotaConfig) -> dict[str, Any]:
    quota: dict[str, Any] = {}
    if q.rpm is not None:
        quota["rpm"] = q.rpm
    if q.tpm is not None:
        quota["tpm"] = q.tpm
    return quota


QUOTAS = named(
    '# The org\'s upstream quotas: [quotas."PROVIDER"] or [quotas."PROVIDER/MODEL"]\n'
    "# with rpm and/or tpm. When one is used up requests queue by priority (see\n"
    "# [limits]) instead of failing upstream; an upstream 429 pauses that model for\n"
    "# its Retry-After.",
    _read,
    _write,
)
