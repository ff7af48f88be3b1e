"""``[store]``: where keys, teams, the ledger and the audit trail live.

Empty (the default): the local SQLite state file. A ``postgresql://`` URL: one
PostgreSQL database shared by every gateway process. The URL never carries the
password (config.toml is not a secret store); it comes from the environment or the
keyring at open (:func:`aigw.store.open.store_password`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aigw.config.base import Reader, table

SCHEMES = ("postgresql", "postgres")


@dataclass(slots=True)
class StoreConfig:
    # "": the SQLite state file next to config.toml (one machine). A URL such as
    # "postgresql://aigw@db.internal/aigw": PostgreSQL, shared by several processes.
    url: str = ""


def check_url(url: str) -> str | None:
    """Why ``url`` is refused as a store URL (None: it is fine)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in SCHEMES:
        return f'must be empty (the SQLite state file) or a "postgresql://" URL (got {url!r})'
    if parts.password is not None:
        return (
            "must not contain a password (config.toml is not a secret store): remove it "
            "and set AIGW_STORE_PASSWORD (or PGPASSWORD, or ~/.pgpass), or keep it in the "
            "OS keyring (service 'aigw', user 'store')"
        )
    if not parts.hostname and "host=" not in parts.query:
        return f"names no host (got {url!r})"
    return None


def _read(r: Reader) -> StoreConfig:
    url = r.get("url", str, "").strip()
    if url:
        problem = check_url(url)
        if problem is not None:
            r.fail("url", problem)
    return StoreConfig(url=url)


def _write(s: StoreConfig) -> dict[str, Any]:
    return {"url": s.url}


STORE = table(
    '# Where keys, teams, the ledger and the audit trail live. url = "" (the default):\n'
    "# the SQLite state file next to this one. Several gateway processes or machines\n"
    '# share one PostgreSQL database: url = "postgresql://aigw@db.internal/aigw". Its\n'
    "# password never goes here: set AIGW_STORE_PASSWORD (or PGPASSWORD, ~/.pgpass), or\n"
    "# keep it in the OS keyring (service 'aigw', user 'store').",
    StoreConfig,
    _read,
    _write,
)
