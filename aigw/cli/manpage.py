"""Generate man/aigw.1 from the command tree, so the page cannot go stale."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text

from aigw import __version__

_INTRO = """\
aigw is an AI gateway: one control point between an organisation's applications and
LLM providers (OpenAI, Anthropic, Google Gemini and OpenAI-compatible servers).
Applications keep their official SDKs and change only the base URL and the key.
The gateway authenticates them with gateway keys, forwards their calls, and records
what every call cost in a ledger kept in one SQLite file.
"""

_ENVIRONMENT = [
    ("AIGW_HOME", "Directory holding config.toml and state.db; overrides the platform defaults."),
    (
        "AIGW_<NAME>_API_KEY",
        "API key of provider NAME (upper-cased, non-alphanumerics as _). "
        "Checked before the systemd credential and the OS keyring.",
    ),
    ("CREDENTIALS_DIRECTORY", "systemd credentials directory; aigw reads aigw-<name> from it."),
]

_SIGNALS = [
    (
        "SIGTERM, SIGINT",
        "aigw serve stops accepting connections and lets the calls in flight finish for up "
        "to [server] drain_seconds (30). Calls still running then are cut, answered with a "
        "503 (a stream ends with an error event) and recorded in the ledger with estimated "
        "usage; then the ledger is committed and the process exits. A second signal cuts "
        "at once.",
    ),
    (
        "SIGHUP",
        "Does not stop the server and does not reload config.toml: aigw serve logs whether "
        "the file changed (restart to apply it) or is invalid. Gateway keys and teams "
        "reload by themselves.",
    ),
]


def _esc(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _plain(text: str | None) -> str:
    """Help text as the terminal shows it: the CLI escapes brackets for rich markup."""
    return Text.from_markup(text or "").plain


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    out = [(path, cmd)]
    for name in sorted(getattr(cmd, "commands", {}) or {}):
        sub = cmd.commands[name]
        if not sub.hidden:
            out.extend(_walk(sub, [*path, name]))
    return out


def _options(cmd: Any) -> list[str]:
    out: list[str] = []
    for p in cmd.params:
        if p.param_type_name == "argument" or "--help" in p.opts or "completion" in p.opts[0]:
            continue
        names = ", ".join(p.opts)
        long = max(p.opts, key=len).lstrip("-").replace("-", "_")
        metavar = "" if p.is_flag else " " + (p.metavar or long).upper()
        out += [".TP", f"\\fB{_esc(names)}\\fR{_esc(metavar)}", _esc(_plain(p.help))]
    return out


def render(root: Any) -> str:
    """The roff source of aigw(1), from ``root``, the click command of the whole CLI."""
    out = [
        f'.TH AIGW 1 "" "aigw {__version__}" "User Commands"',
        ".SH NAME",
        "aigw \\- an AI gateway with keys, limits and a cost ledger in one process",
        ".SH SYNOPSIS",
        ".B aigw",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _esc(_INTRO),
    ]
    for path, cmd in _walk(root, []):
        if not path:
            out.append(".SH GLOBAL OPTIONS")
            out.extend(_options(cmd))
            out.append(".SH COMMANDS")
            continue
        has_children = bool(getattr(cmd, "commands", None))
        out.append(".SS " + _esc("aigw " + " ".join(path)))
        out.append(_esc(_plain(cmd.help).strip()))
        if has_children:
            continue
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        if args:
            out.append(".PP")
            out.append("Arguments: " + _esc(" ".join(str(a.name).upper() for a in args)))
        out.extend(_options(cmd))
    out.append(".SH ENVIRONMENT")
    for name, text in _ENVIRONMENT:
        out += [".TP", f"\\fB{_esc(name)}\\fR", _esc(text)]
    out.append(".SH SIGNALS")
    for name, text in _SIGNALS:
        out += [".TP", f"\\fB{_esc(name)}\\fR", _esc(text)]
    out += [
        ".SH FILES",
        ".TP",
        "\\fIconfig.toml\\fR",
        "Configuration: server, upstream timeouts, providers, model aliases, price overrides.",
        ".TP",
        "\\fIstate.db\\fR",
        "SQLite state: gateway keys (hashed) and the cost ledger.",
        ".SH SEE ALSO",
        "The README at https://github.com/aigw/aigw",
        "",
    ]
    return "\n".join(out)


def man(ctx: typer.Context) -> None:
    """Print the man page (roff) generated from the command tree."""
    # The tree comes from the running command, not an import of aigw.cli (a cycle).
    typer.echo(render(ctx.find_root().command), nl=False)
