"""Where aigw keeps its files. ``AIGW_HOME`` overrides every location."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "aigw"


@dataclass(frozen=True, slots=True)
class Paths:
    config_file: Path
    state_file: Path

    @property
    def config_dir(self) -> Path:
        return self.config_file.parent


def resolve(home: str | os.PathLike[str] | None = None) -> Paths:
    """Paths for ``home`` (or ``$AIGW_HOME``); else platformdirs' config and data dirs."""
    home = home or os.environ.get("AIGW_HOME") or None
    if home:
        base = Path(home).expanduser()
        return Paths(base / "config.toml", base / "state.db")
    return Paths(
        Path(platformdirs.user_config_dir(APP)) / "config.toml",
        Path(platformdirs.user_data_dir(APP)) / "state.db",
    )
