"""Small things users hit on the command line: help text, flags, errors, start-up cost."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw.cli import app
from tests import statedb
from tests.serverproc import start_server

# A bracketed literal in help text, as written in the source or escaped for rich:
# [budgets], [prices."MODEL"], \\[server]. Rich markup tags would be eaten by the renderer.
_LITERAL = re.compile(r"\\?\[([A-Za-z_][^\[\]\s]*)\]")


def aigw(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "250"})


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    out = [(path, cmd)]
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        out.extend(_walk(sub, [*path, name]))
    return out


def test_every_help_page_keeps_its_bracketed_literals() -> None:
    seen = 0
    for path, cmd in _walk(typer.main.get_command(app), []):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        literals = {m.group(1) for t in texts for m in _LITERAL.finditer(t)}
        result = aigw(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        for name in literals:
            assert f"[{name}]" in result.output, (path, name, result.output)
        assert "\\[" not in result.output, (path, result.output)
        seen += len(literals)
    assert seen >= 3  # [budgets] in --period and --alert-at of teams and keys


def test_flags_show_no_value_in_help() -> None:
    for path, _cmd in _walk(typer.main.get_command(app), []):
        out = aigw(*path, "--help").output
        assert "<bool>" not in out, (path, out)
    out = aigw("report", "--help").output
    assert re.search(r"--json\s+Print", out), out


def test_cli_start_does_not_import_the_server_stack() -> None:
    """`aigw --help`, keys, teams and report must start fast: no aiohttp, provider SDKs
    or server modules at import (they cost about a second on a small machine)."""
    code = (
        "import sys\n"
        "from aigw.cli import main\n"
        "sys.argv = ['aigw', '--help']\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('aiohttp', 'openai', 'anthropic', 'google.genai', 'uvloop',\n"
        "         'aigw.app', 'aigw.gateway', 'aigw.server')\n"
        "print('LOADED', sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "LOADED []" in done.stderr, done.stderr


def test_report_rejects_contradictory_options(store_url: str) -> None:
    statedb.init_home(store_url)
    both = aigw("report", "--json", "--csv")
    assert both.exit_code == 1 and "--json and --csv" in both.output
    backwards = aigw("report", "--since", "2026-11-10", "--until", "2026-11-01")
    assert backwards.exit_code == 1 and "must be later than --since" in backwards.output
    assert aigw("report", "--since", "2026-11-01", "--until", "2026-11-10").exit_code == 0


def _serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aigw", "serve", *args],
        env={**os.environ, "AIGW_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_a_bad_port_or_log_level_without_a_traceback(
    isolated_home: Path, store_url: str
) -> None:
    statedb.init_home(store_url)
    too_big = _serve(isolated_home, "--port", "99999")
    assert too_big.returncode == 2 and "65535" in too_big.stderr, too_big
    level = _serve(isolated_home, "--port", "0", "--log-level", "loud")
    assert level.returncode == 1 and "--log-level must be one of" in level.stderr, level
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = _serve(isolated_home, "--host", "127.0.0.1", "--port", str(port))
    assert taken.returncode == 1, taken
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr, taken
    for done in (too_big, level, taken):
        assert "Traceback" not in done.stdout + done.stderr, done


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_banner_on_all_interfaces_prints_a_usable_url(
    tmp_path: Path, host: str, store_url: str
) -> None:
    if host == "::" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")

    async def run() -> str:
        cfg = statedb.use_store(config_mod.default_config(), store_url)
        cfg.server.host = host
        server = await start_server(tmp_path, cfg)
        try:
            await server.wait_output("OPENAI_BASE_URL")
            return "".join(server.output)
        finally:
            await server.stop()

    try:
        banner = asyncio.run(run())
    except RuntimeError as exc:
        if host == "::" and "Address family" in str(exc):
            pytest.skip("IPv6 disabled here")
        raise
    loopback = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
    assert f"listening on http://{loopback}:" in banner and "(all interfaces)" in banner, banner
    assert f"http://{host}" not in banner and "http://:::" not in banner, banner
    assert f"OPENAI_BASE_URL=http://{loopback}:" in banner, banner
