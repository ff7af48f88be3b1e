"""The `aigw` command line: a thin shell over the library.

Commands live in one module per group. Core code raises aigw's own error types;
:class:`AigwGroup` is the one place that turns them into a message and exit code 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup, TyperOption

from aigw import __version__
from aigw.cli.common import err_console
from aigw.errors import AigwError


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

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AigwError as exc:
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


def _register() -> None:
    from aigw.cli import (
        demo,
        init,
        keys,
        manpage,
        models,
        prices,
        providers,
        report,
        serve,
        teams,
    )

    app.command("init")(init.init)
    app.add_typer(providers.app, name="providers")
    app.add_typer(keys.app, name="keys")
    app.add_typer(teams.app, name="teams")
    app.command("serve")(serve.serve)
    app.command("report")(report.report)
    app.add_typer(prices.app, name="prices")
    app.add_typer(models.app, name="models")
    app.command("demo")(demo.demo)
    app.command("man", hidden=True)(manpage.man)


_register()


def main() -> None:
    app(prog_name="aigw")
