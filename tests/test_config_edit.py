"""Commands that change config.toml edit it in place: the operator's comments stay, the
previous file is kept as config.toml.bak (owner-only), a fresh file is `render`'s."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from aigw import config as config_mod
from tests.test_cli import ok

HAND_WRITTEN = """\
# Operator: this gateway serves the ML team. Ask #ml-infra before changing it.

[server]
# inside a table: port agreed with the firewall team
port = 9100  # trailing a value: see ticket OPS-12
host = "127.0.0.1"

[providers.mock]
type = "mock"  # the offline provider
"""

COMMENTS = (
    "# Operator: this gateway serves the ML team. Ask #ml-infra before changing it.",
    "# inside a table: port agreed with the firewall team",
    "port = 9100  # trailing a value: see ticket OPS-12",
    'type = "mock"  # the offline provider',
)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_providers_add_and_remove_keep_comments_and_a_backup(isolated_home: Path) -> None:
    cfg_file = isolated_home / "config.toml"
    cfg_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg_file.write_text(HAND_WRITTEN)
    cfg_file.chmod(0o600)

    ok("providers", "add", "openai", "--type", "openai")
    text = cfg_file.read_text()
    for line in COMMENTS:
        assert line in text
    assert text.startswith(HAND_WRITTEN)  # nothing above the new table moved
    assert "[providers.openai]" in text
    assert tomllib.loads(text)["providers"]["openai"]["type"] == "openai"
    backup = cfg_file.with_name("config.toml.bak")
    assert backup.read_text() == HAND_WRITTEN
    if os.name == "posix":
        assert _mode(backup) == 0o600 and _mode(cfg_file) == 0o600

    ok("providers", "remove", "openai", "--keep-key")
    assert cfg_file.read_text() == HAND_WRITTEN
    assert backup.read_text() == text

    ok("providers", "remove", "mock", "--keep-key")
    after = cfg_file.read_text()
    assert "[providers.mock]" not in after
    for line in COMMENTS[:3]:
        assert line in after


def test_a_changed_value_keeps_its_trailing_comment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(HAND_WRITTEN)
    cfg = config_mod.load(path)
    cfg.server.port = 9200
    config_mod.save(cfg, path)
    assert "port = 9200  # trailing a value: see ticket OPS-12" in path.read_text()
    assert config_mod.load(path).server.port == 9200


def test_a_new_section_gets_its_comment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(HAND_WRITTEN)
    cfg = config_mod.load(path)
    cfg.providers["azure"] = config_mod.ProviderConfig(
        name="azure", type="openai", base_url="https://x.example/v1", headers={"x-team": "ml"}
    )
    cfg.translation.strict = False
    config_mod.save(cfg, path)
    text = path.read_text()
    assert text.startswith(HAND_WRITTEN)
    translation = dict(config_mod.SECTIONS)["translation"]
    assert translation.comment.rstrip("\n") + "\n[translation]" in text
    again = config_mod.load(path)
    assert not again.translation.strict and again.providers["azure"].headers == {"x-team": "ml"}


def test_a_missing_file_gets_the_rendered_default(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    cfg = config_mod.default_config()
    config_mod.save(cfg, path)
    assert path.read_text() == config_mod.render(cfg)
    assert not path.with_name("config.toml.bak").exists()


def test_a_file_that_does_not_load_is_replaced_but_backed_up(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("not = [valid\n")
    cfg = config_mod.default_config()
    config_mod.save(cfg, path)
    assert path.read_text() == config_mod.render(cfg)
    assert path.with_name("config.toml.bak").read_text() == "not = [valid\n"


@pytest.mark.parametrize("golden", ["default.toml", "full.toml"])
def test_saving_an_unchanged_golden_file_is_a_no_op(tmp_path: Path, golden: str) -> None:
    src = Path(__file__).parent / "config_golden" / golden
    path = tmp_path / "config.toml"
    path.write_text(src.read_text())
    config_mod.save(config_mod.load(path), path)
    assert path.read_text() == src.read_text()


@pytest.mark.parametrize(
    "written",
    [
        'providers = { mock = { type = "mock" } }  # inline\n',
        '# dotted\nproviders.mock.type = "mock"  # dotted\n',
        '[providers]\nmock = { type = "mock" }  # inline in a table\n',
    ],
)
def test_other_toml_spellings_are_edited_too(tmp_path: Path, written: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(written)
    cfg = config_mod.load(path)
    cfg.providers["openai"] = config_mod.ProviderConfig(
        name="openai", type="openai", base_url="https://api.openai.com/v1", headers={"a": "b"}
    )
    config_mod.save(cfg, path)
    comment = written.split("#")[-1].strip()
    assert comment in path.read_text()
    assert config_mod.load(path).providers["openai"].headers == {"a": "b"}
    cfg = config_mod.load(path)
    del cfg.providers["openai"]
    config_mod.save(cfg, path)
    assert path.read_text() == written
