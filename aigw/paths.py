"""Where aigw keeps its files. ``AIGW_HOME`` overrides every location; ``AIGW_CONFIG``
then names the config file alone (a service reads it from a read-only place, e.g. a
systemd credential, while its state stays in its state directory)."""

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
    config = os.environ.get("AIGW_CONFIG") or None
    if home:
        base = Path(home).expanduser()
        found = Paths(base / "config.toml", base / "state.db")
    else:
        found = Paths(
            Path(platformdirs.user_config_dir(APP)) / "config.toml",
            Path(platformdirs.user_data_dir(APP)) / "state.db",
        )
    if config:
        return Paths(Path(config).expanduser(), found.state_file)
    return found


# -- owner-only files -------------------------------------------------------------------
#
# The state file holds hashes of gateway keys and the whole ledger; the config may hold
# a webhook URL. They are created for their owner only (0600 files in 0700 directories),
# whatever the umask, and a start-up warning names any that are wider.

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> None:
    """Create directory ``path`` (and its parents) owner-only; an existing one is kept."""
    if path.is_dir():
        return
    private_dir(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:  # created meanwhile by another process
        return
    path.chmod(PRIVATE_DIR)  # mkdir's mode is filtered by the umask


def private_file(path: Path) -> None:
    """Create an empty owner-only file at ``path`` unless it exists (the mode is set at
    creation, so no other user can open it in between)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)


def too_open(*files: Path) -> list[str]:
    """Warnings for each existing file (or its directory) that others may read."""
    if os.name != "posix":
        return []
    out: list[str] = []
    seen: set[Path] = set()
    for f in files:
        for p, kind in ((f.parent, "directory"), (f, "file")):
            if p in seen:
                continue
            seen.add(p)
            try:
                mode = p.stat().st_mode & 0o777
            except OSError:
                continue
            if mode & 0o077:
                want = PRIVATE_DIR if kind == "directory" else PRIVATE_FILE
                out.append(
                    f"{p} is open to other users (mode {mode:04o}) and holds aigw's "
                    f"private data; restrict it: chmod {want:o} {p}"
                )
    return out
