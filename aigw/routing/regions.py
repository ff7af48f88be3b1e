"""Data residency: which provider regions a caller's requests may go to.

A team or key with ``--regions eu,eu-west`` reaches only providers whose
``[providers.X] region`` is one of them; the key's setting, when it has one, replaces
its team's (the narrowest scope wins, as with priority). A provider without a region
serves only callers without a restriction. Pure functions over records.
"""

from __future__ import annotations

from collections.abc import Iterable

from aigw.model import KeyRecord, TeamRecord

# None: no restriction.
Regions = frozenset[str] | None


def allowed_regions(key: KeyRecord, team: TeamRecord | None) -> Regions:
    """The regions ``key``'s calls may go to: the key's own, else its team's, else any."""
    regions = key.limits.regions
    if regions is None and team is not None:
        regions = team.limits.regions
    return None if regions is None else frozenset(regions)


def region_allows(allowed: Regions, provider_region: str | None) -> bool:
    """Whether a provider in ``provider_region`` may serve a caller limited to ``allowed``."""
    if allowed is None:
        return True
    return provider_region is not None and provider_region in allowed


def narrow(allowed: Regions, asked: Regions) -> Regions:
    """``allowed`` narrowed by what a request asked for (never widened)."""
    if asked is None:
        return allowed
    return asked if allowed is None else allowed & asked


def names(regions: Iterable[str]) -> str:
    return ", ".join(sorted(regions)) or "none"
