"""``[ledger]``: how durable a committed cost row is, and how long rows are kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table

_RETENTION = re.compile(r"^\s*(\d+)\s*(h|d|w|y)\s*$")
_UNIT = {"h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def retention_seconds(text: str) -> float | None:
    """'90d', '12w', '3y', '48h' -> seconds; 'forever' -> None; ValueError otherwise."""
    if text.strip() == "forever":
        return None
    m = _RETENTION.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(text)
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass(slots=True)
class LedgerConfig:
    # "normal": a committed row survives a crash of aigw (kill -9), not of the OS.
    # "full": it survives power loss too, at the price of an fsync per group commit.
    synchronous: str = "normal"
    # Raw rows older than this are pruned in the background; their totals live on in
    # the hourly and daily rollups, so reports and budgets stay exact.
    keep_rows: str = "90d"
    # Rollups older than this are pruned too ("forever": never).
    keep_rollups: str = "3y"

    @property
    def keep_rows_seconds(self) -> float | None:
        return retention_seconds(self.keep_rows)

    @property
    def keep_rollups_seconds(self) -> float | None:
        return retention_seconds(self.keep_rollups)


def _read(r: Reader) -> LedgerConfig:
    d = LedgerConfig()
    sync = r.get("synchronous", str, d.synchronous)
    if sync not in ("normal", "full"):
        r.fail("synchronous", f'must be "normal" or "full" (got {sync!r})')
    keep: dict[str, str] = {}
    for name, default in (("keep_rows", d.keep_rows), ("keep_rollups", d.keep_rollups)):
        value = r.get(name, str, default)
        try:
            retention_seconds(value)
        except ValueError:
            r.fail(
                name, f'must be a duration such as "90d", "12w", "3y" or "forever" (got {value!r})'
            )
        keep[name] = value
    rows_s, rollups_s = (
        retention_seconds(keep["keep_rows"]),
        retention_seconds(keep["keep_rollups"]),
    )
    if rollups_s is not None and (rows_s is None or rollups_s < rows_s):
        r.fail("keep_rollups", "must be at least keep_rows (reports read the rollups)")
    return LedgerConfig(
        synchronous=sync, keep_rows=keep["keep_rows"], keep_rollups=keep["keep_rollups"]
    )


def _write(ledger: LedgerConfig) -> dict[str, Any]:
    return {
        "synchronous": ledger.synchronous,
        "keep_rows": ledger.keep_rows,
        "keep_rollups": ledger.keep_rollups,
    }


LEDGER = table(
    '# synchronous = "normal": every answered request\'s cost row survives a crash of\n'
    '# aigw; "full" also survives power loss (an fsync per group commit).\n'
    "# keep_rows: raw cost rows older than this are pruned in the background (hourly and\n"
    "# daily totals are kept, so reports and budgets stay exact); keep_rollups: how long\n"
    '# those totals are kept. Durations: "48h", "90d", "12w", "3y" or "forever".',
    LedgerConfig,
    _read,
    _write,
)
