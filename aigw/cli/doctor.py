"""`aigw doctor`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from aigw import doctor as doctor_mod
from aigw.cli.common import console, print_json

_MARKS = {
    doctor_mod.OK: "[green]✓[/]",
    doctor_mod.WARN: "[yellow]![/]",
    doctor_mod.FAIL: "[red]✗[/]",
    doctor_mod.SKIP: "[dim]-[/]",
}


def doctor(
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Do not call the providers (no network calls to them)."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")
    ] = 10.0,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check the config, state file, keyring, provider keys, providers and server; say how
    to fix what is wrong.

    Exits 1 when a check failed (warnings do not count)."""
    checks = doctor_mod.run(offline=offline, wait=timeout)
    bad = doctor_mod.failed(checks)
    if json:
        print_json({"ok": not bad, "checks": [c.as_dict() for c in checks]})
    else:
        for c in checks:
            console.print(f"{_MARKS[c.status]} {escape(c.name)}: {escape(c.detail)}")
            if c.fix and c.status != doctor_mod.OK:
                console.print(f"    fix: {escape(c.fix)}")
        fails = sum(c.status == doctor_mod.FAIL for c in checks)
        warns = sum(c.status == doctor_mod.WARN for c in checks)
        if bad:
            console.print(f"[red]{fails} problem(s)[/], {warns} warning(s)")
        else:
            console.print(f"[green]all good[/] ({warns} warning(s))")
    if bad:
        raise typer.Exit(1)
