"""``[providers.NAME]``: the upstream APIs aigw can call (their keys live elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aigw.config.base import Parsed, Reader, named
from aigw.model import region_problem

PROVIDER_TYPES = ("openai", "anthropic", "gemini", "mock")

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mock": "",
}


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
    # Where the provider processes data ("eu", "us", "eu-west"...): callers whose team
    # or key has --regions reach only providers in one of them (aigw.routing.regions).
    region: str | None = None


def _read(r: Reader, name: str, _parsed: Parsed) -> ProviderConfig:
    ptype = r.get("type", str, None)
    if ptype is None:
        r.fail("type", f"is required (one of {', '.join(PROVIDER_TYPES)})")
    if ptype not in PROVIDER_TYPES:
        r.fail("type", f"must be one of {', '.join(PROVIDER_TYPES)} (got {ptype!r})")
    base_url = r.get("base_url", str, DEFAULT_BASE_URLS[ptype]).rstrip("/")
    if ptype != "mock" and not base_url.startswith(("http://", "https://")):
        r.fail("base_url", f"must start with http:// or https:// (got {base_url!r})")
    return ProviderConfig(
        name=name,
        type=ptype,
        base_url=base_url,
        headers=r.strings("headers"),
        query=r.strings("query"),
        auth_header=r.get("auth_header", str, None),
        region=_region(r),
    )


def _region(r: Reader) -> str | None:
    region: str | None = r.get("region", str, None)
    if region is None:
        return None
    problem = region_problem(region)
    if problem is not None:
        r.fail("region", problem)
    return region.lower()


def _write(p: ProviderConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": p.type}
    if p.base_url:
        entry["base_url"] = p.base_url
    if p.headers:
        entry["headers"] = p.headers
    if p.query:
        entry["query"] = p.query
    if p.auth_header:
        entry["auth_header"] = p.auth_header
    if p.region:
        entry["region"] = p.region
    return entry


PROVIDERS = named(
    "# Providers: `aigw providers add NAME --type openai|anthropic|gemini|mock`.\n"
    '# Clients reach one as model "NAME/MODEL".',
    _read,
    _write,
)
