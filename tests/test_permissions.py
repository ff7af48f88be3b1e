"""The state file, its WAL and SHM, the config and their directories are owner-only."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw import config as config_mod
from aigw.config import Config
from aigw.store import open_database
from tests.serverproc import start_server
from tests.statedb import use_store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022 umask, under which plain creation gives 0644 files, 0755 dirs."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.sqlite_only("the modes of the state file, its WAL and SHM")
@pytest.mark.usefixtures("loose_umask")
async def test_state_file_wal_shm_and_directories_are_created_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "new" / "deeper" / "state.db"
    db = await open_database(state, fast_writes=True)
    try:
        await db.execute("CREATE TABLE scratch (x)")
        wal, shm = Path(f"{state}-wal"), Path(f"{state}-shm")
        assert {p.name: mode(p) for p in (state, wal, shm)} == {
            "state.db": 0o600,
            "state.db-wal": 0o600,
            "state.db-shm": 0o600,
        }
        assert mode(state.parent) == 0o700
        assert mode(state.parent.parent) == 0o700
    finally:
        await db.close()


@pytest.mark.usefixtures("loose_umask")
def test_config_file_and_directory_are_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "config.toml"
    config_mod.save(Config(), path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    # Saving again over a file someone widened tightens it (the file is replaced).
    path.chmod(0o644)
    config_mod.save(Config(), path)
    assert mode(path) == 0o600


@pytest.mark.slow
async def test_serve_warns_about_wider_existing_files(tmp_path: Path, store_url: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    state = home / "state.db"
    sqlite3.connect(state).close()
    state.chmod(0o644)
    cfg = use_store(Config(), store_url)
    server = await start_server(home, cfg)
    try:
        text = "".join(server.output)
        assert f"{home} is open to other users (mode 0755)" in text
        if store_url:  # a state file PostgreSQL does not use is not aigw's data
            assert f"{state} is open" not in text
        else:
            assert f"{state} is open to other users (mode 0644)" in text
            assert "chmod 600" in text
        assert "chmod 700" in text
        assert "config.toml is open" not in text  # written 0600 by start_server
    finally:
        await server.stop()
