"""`aigw --help`, `keys`, `teams` and `report` start fast (issue 9 item 13).

A wall-clock limit would flake on a busy machine, so these tests pin down what makes
start-up slow instead: which modules a command imports. Each runs the real entry point
in a fresh interpreter and lists the heavy modules it loaded.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.markup import escape
from typer.testing import CliRunner

from aigw.cli import COMMANDS, AigwGroup, app
from aigw.cli import _root as cli_root

# Never needed by a command that does not serve or drive the gateway.
SERVER = (
    "aiohttp",
    "openai",
    "anthropic",
    "google.genai",
    "uvloop",
    "aigw.app",
    "aigw.gateway",
    "aigw.server",
    "aigw.pipeline",
    "aigw.providers",
    "aigw.translate",
    "aigw.cli.serve",
    "aigw.cli.demo",
)
# Needed only when a command touches the state file or edits config.toml. (asyncio is
# not listed: the budget alerts that teams and report show import it.)
STATE = ("aiosqlite", "sqlite3", "aigw.store", "tomlkit")
# The other commands' modules: `aigw X` imports aigw.cli.X only.
OTHERS = tuple(f"aigw.cli.{e.module}" for e in COMMANDS.values())

_PROBE = """
import json, sys
sys.argv = ["aigw", *json.loads(sys.argv[1])]
from aigw.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nLOADED " + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded(*args: str) -> set[str]:
    """The modules `aigw ARGS` imported, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return set(json.loads(line.removeprefix("LOADED ")))


def _hits(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_root_help_imports_no_command() -> None:
    mods = loaded("--help")
    assert _hits(mods, SERVER + STATE + OTHERS + ("aigw.config", "aigw.report")) == []


@pytest.mark.parametrize("group", ["keys", "teams", "report", "prices", "providers"])
def test_a_commands_help_imports_neither_state_nor_server(group: str) -> None:
    mods = loaded(group, "--help")
    others = tuple(m for m in OTHERS if m != f"aigw.cli.{group}")
    # teams and report show budgets: report imports the teams module for its table.
    if group == "report":
        others = tuple(m for m in others if m != "aigw.cli.teams")
    assert _hits(mods, SERVER + STATE + others) == []


@pytest.mark.parametrize(
    ("args", "store"),
    [
        (("keys", "list"), True),
        (("teams", "list"), True),
        (("report",), True),
        (("prices", "list"), False),
    ],
)
def test_commands_that_read_state_load_no_server(
    isolated_home: Path, args: tuple[str, ...], store: bool
) -> None:
    assert CliRunner().invoke(app, ["init"]).exit_code == 0
    mods = loaded(*args)
    assert ("aigw.store.sqlite" in mods) is store  # it ran, and opened the state if needed
    # Reading config.toml needs no tomlkit; only commands that change it load it.
    assert _hits(mods, (*SERVER, "tomlkit")) == []


def _first_paragraph(cmd: Any) -> str:
    return str(cmd.short_help or cmd.help or "").split("\n\n")[0]


def _eager_app() -> typer.Typer:
    """The CLI as it was built before commands were loaded lazily: every module
    imported and registered up front."""
    eager = typer.Typer(
        cls=AigwGroup,
        help=app.info.help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    eager.callback()(cli_root)
    for name, entry in COMMANDS.items():
        obj = getattr(importlib.import_module(f"aigw.cli.{entry.module}"), entry.attr)
        if isinstance(obj, typer.Typer):
            eager.add_typer(obj, name=name)
        else:
            eager.command(name, hidden=entry.hidden)(obj)
    return eager


def test_the_lazy_table_says_what_the_commands_say() -> None:
    """`aigw --help` lists the commands from aigw.cli.COMMANDS without importing them:
    the table must carry each command's own help, order and visibility."""
    root: Any = typer.main.get_command(app)
    for name, entry in COMMANDS.items():
        cmd = root.commands[name]  # imports it
        # A loaded command's help is escaped for rich (its brackets are literals).
        assert _first_paragraph(cmd) == escape(entry.help), name
        assert cmd.hidden == entry.hidden, name
    runner = CliRunner()
    env = {"COLUMNS": "120"}
    for args in (["--help"], ["keys", "--help"], ["report", "--help"], ["serve", "--help"]):
        lazy = runner.invoke(app, args, env=env)
        eager = runner.invoke(_eager_app(), args, env=env)
        assert lazy.exit_code == eager.exit_code == 0, (args, lazy.output)
        assert lazy.output == eager.output, args
