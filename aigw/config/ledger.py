"""``[ledger]``: how durable a committed cost row is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class LedgerConfig:
    # "normal": a committed row survives a crash of aigw (kill -9), not of the OS.
    # "full": it survives power loss too, at the price of an fsync per group commit.
    synchronous: str = "normal"


def _read(r: Reader) -> LedgerConfig:
    sync = r.get("synchronous", str, "normal")
    if sync not in ("normal", "full"):
        r.fail("synchronous", f'must be "normal" or "full" (got {sync!r})')
    return LedgerConfig(synchronous=sync)


def _write(ledger: LedgerConfig) -> dict[str, Any]:
    return {"synchronous": ledger.synchronous}


LEDGER = table(
    '# synchronous = "normal": every answered request\'s cost row survives a crash of\n'
    '# aigw; "full" also survives power loss (an fsync per group commit).',
    LedgerConfig,
    _read,
    _write,
)
