"""The `aigw` command line: a thin shell over the library.

Commands live in one module per group. Core code raises aigw's own error types;
:class:`AigwGroup` is the one place that turns them into a message and exit code 1.

**Start-up time.** Only the module of the command being run is imported (the table
:data:`COMMANDS`), so ``aigw keys list`` never loads the server, the report or the
demo, and ``aigw --help`` lists the commands from the table without importing any of
them. ``tests/test_cli_startup.py`` checks what a command imports and that the table's
help texts are the commands' own.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption

from aigw import __version__
from aigw.errors import AigwError


@dataclass(frozen=True, slots=True)
class Entry:
    """A top-level command: ``aigw.cli.<module>.<attr>``, a Typer app (a group) or a
    function (a command), and the first paragraph of its help for ``aigw --help``."""

    module: str
    attr: str
    help: str
    hidden: bool = False

    def load(self, name: str) -> Any:
        obj = getattr(importlib.import_module(f"aigw.cli.{self.module}"), self.attr)
        if isinstance(obj, typer.Typer):
            cmd: Any = typer.main.get_group(obj)
        else:
            single = typer.Typer(add_completion=False)  # completion is the root's
            single.command(name, hidden=self.hidden)(obj)
            cmd = typer.main.get_command(single)
        cmd.name = name
        _tidy(cmd)
        return cmd


# In the order `aigw --help` lists them (Typer lists commands before groups).
COMMANDS: dict[str, Entry] = {
    "init": Entry(
        "init", "init", "Write a commented default config.toml and create the state database."
    ),
    "serve": Entry(
        "serve",
        "serve",
        "Run the gateway: OpenAI-compatible endpoint, key auth and the cost ledger.",
    ),
    "report": Entry(
        "report",
        "report",
        "Spend and usage from the ledger, grouped by team, app, key, model, provider or day;\n"
        "then each budget's spend and remaining in its current period.",
    ),
    "backup": Entry(
        "ledger",
        "backup",
        "Copy the state consistently while the servers run: the state file, or PostgreSQL's\n"
        "state into a new state file (one snapshot).",
    ),
    "restore": Entry(
        "ledger",
        "restore",
        "Replace the state with a backup (on PostgreSQL in one transaction); refuses while a\n"
        "server uses the state.",
    ),
    "migrate": Entry(
        "migrate",
        "migrate",
        "Copy the SQLite state (keys, teams, ledger, rollups, alerts, audit) into PostgreSQL.",
    ),
    "demo": Entry(
        "demo",
        "demo",
        "Run the gateway on a built-in mock provider, send requests with the openai SDK, report.",
    ),
    "top": Entry(
        "top",
        "top",
        "Live view of requests/s, spend, errors and limit refusals per team (q to quit).",
    ),
    "doctor": Entry(
        "doctor",
        "doctor",
        "Check the config, state file, keyring, provider keys, providers and server; say how\n"
        "to fix what is wrong.",
    ),
    "man": Entry(
        "manpage",
        "man",
        "Print the man page (roff) generated from the command tree.",
        hidden=True,
    ),
    "providers": Entry(
        "providers",
        "app",
        "Configure upstream providers (OpenAI, Anthropic, Gemini, compatible servers, mock). "
        "aigw looks for a provider's key in this order: the environment variable "
        "AIGW_<NAME>_API_KEY (NAME upper-cased, non-alphanumerics as _), then the systemd "
        "credential $CREDENTIALS_DIRECTORY/aigw-<name>, then the OS keyring (service 'aigw'). "
        "Any of them may hold several keys separated by commas (a key pool): calls are "
        "spread over them, and a key answered 401/403/429 is rested while the others serve.",
    ),
    "keys": Entry(
        "keys",
        "app",
        "Create, list, revoke and rotate gateway keys. A key is shown once; only its hash is "
        "stored. Changes reach a running server within a second.",
    ),
    "teams": Entry(
        "teams",
        "app",
        "Create and change teams: rate limits, hard budgets, alerts and priority shared by all "
        "of a team's keys (a key's own limits apply on top). A key may name a team that has no "
        "record; it then has only its own limits. Changes reach a running server within a "
        "second.",
    ),
    "prices": Entry(
        "prices",
        "app",
        "The price table: list it, find models with no price, import LiteLLM's prices.",
    ),
    "models": Entry("models", "app", "Model routes: [models.NAME] and their targets."),
    "ledger": Entry(
        "ledger",
        "app",
        "The cost ledger's upkeep: prune old raw rows, check the state's integrity (SQLite or "
        "PostgreSQL).",
    ),
    "cache": Entry(
        "cache",
        "app",
        "The response cache ([cache] in config.toml; per team or key: --cache): what it "
        "holds, the hits it served and the money they saved; clear it.",
    ),
    "logs": Entry(
        "logs", "logs", "The audit trail: proxied calls and admin changes, oldest first."
    ),
    "audit": Entry(
        "audit",
        "app",
        "The tamper-evident audit trail: every proxied call and admin change, each event "
        "hash-chained to the one before (SHA-256, or HMAC-SHA-256 with a key from "
        "AIGW_AUDIT_KEY or the keyring). Verify the chain, export it, show one call.",
    ),
}


class LazyCommands(MutableMapping[str, Any]):
    """The root group's ``commands``: an entry's module is imported when its command is
    first looked up. Iterating gives the names without importing anything."""

    def __init__(self, entries: dict[str, Entry]) -> None:
        self._entries = entries
        self._loaded: dict[str, Any] = {}  # name -> click command (typer vendors click)

    def __getitem__(self, name: str) -> Any:
        cmd = self._loaded.get(name)
        if cmd is None:
            cmd = self._loaded[name] = self._entries[name].load(name)
        return cmd

    def __setitem__(self, name: str, cmd: Any) -> None:
        self._loaded[name] = cmd

    def __delitem__(self, name: str) -> None:
        if name not in self._entries and name not in self._loaded:
            raise KeyError(name)
        self._entries = {k: v for k, v in self._entries.items() if k != name}
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._entries, *self._loaded]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._entries, *self._loaded]))

    def listing(self, name: str) -> Any:
        """What ``aigw --help`` shows for ``name``: the command if loaded, else a stand-in
        carrying the table's help (nothing is imported)."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self._entries.get(name)
        if entry is None:
            return None
        return TyperCommand(name, help=escape(entry.help), hidden=entry.hidden)


def _tidy(cmd: Any) -> None:
    """Make every help text in the tree print as written.

    Typer renders help as rich markup, which eats bracketed literals such as
    ``[budgets]``: escape them.
    """
    for attr in ("help", "short_help", "epilog"):
        text = getattr(cmd, attr, None)
        if text and not getattr(cmd, "_aigw_escaped", False):
            setattr(cmd, attr, escape(text))
    for p in cmd.params:
        if getattr(p, "help", None) and not getattr(p, "_aigw_escaped", False):
            p.help = escape(p.help)
            p._aigw_escaped = True
    cmd._aigw_escaped = True
    for sub in (getattr(cmd, "commands", None) or {}).values():
        _tidy(sub)


_display_type = TyperOption.display_type_rich


def _flag_without_type(self: TyperOption, ctx: Any) -> str | None:
    """Typer shows every flag as ``--json <bool>``, as if it took a value: it takes none."""
    if self.is_flag and self.metavar is None:
        return None
    return _display_type(self, ctx)


TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]


class AigwGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self)
        self._listing = False
        # The root (the only AigwGroup): its commands come from the table, on demand.
        lazy = LazyCommands(COMMANDS)
        lazy.update(self.commands)
        self.commands = lazy

    def list_commands(self, ctx: Any) -> list[str]:
        # Typer's reads commands.items(), which would import every command.
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands = self.commands
        if self._listing and isinstance(commands, LazyCommands):
            return commands.listing(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The command list needs only names and help: do not import the commands.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AigwError as exc:
            from aigw.cli.common import err_console

            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=AigwGroup,
    help="aigw: an AI gateway. One process, one SQLite file, every provider behind one key.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aigw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Directory for config.toml and state.db (default: $AIGW_HOME, else the "
            "platform's config and data dirs).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    if home is not None:
        os.environ["AIGW_HOME"] = str(home)


def main() -> None:
    app(prog_name="aigw")
