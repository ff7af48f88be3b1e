"""The command line, in-process (CliRunner) and end to end (a real `aigw serve`)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import keyring
import openai
import pytest
from keyring.backends import fail
from typer.testing import CliRunner

from aigw import config as config_mod
from aigw.cli import app
from tests import statedb
from tests.fakes.openai import FakeOpenAI
from tests.serverproc import start_server


def aigw(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "200"})


def ok(*args: str, input: str | None = None) -> str:
    result = aigw(*args, input=input)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


def test_init_writes_commented_config_and_refuses_to_overwrite(isolated_home: Path) -> None:
    out = ok("init")
    text = (isolated_home / "config.toml").read_text()
    assert text.startswith("# aigw configuration")
    assert "AIGW_<NAME>_API_KEY" in text
    data = tomllib.loads(text)
    assert data["server"]["port"] == 8787 and data["providers"]["mock"]["type"] == "mock"
    assert (isolated_home / "state.db").exists()
    assert "config.toml" in out
    again = aigw("init")
    assert again.exit_code == 1 and "already exists" in again.output
    ok("init", "--force")


def test_providers_add_list_remove(isolated_home: Path, store_url: str) -> None:
    statedb.init_home(store_url)
    ok("providers", "add", "openai", "--type", "openai")
    ok("providers", "add", "local", "--type", "openai", "--base-url", "http://localhost:11434/v1")
    ok(
        "providers",
        "add",
        "azure",
        "--type",
        "openai",
        "--base-url",
        "https://x.openai.azure.com/openai/deployments/gpt4o",
        "--auth-header",
        "api-key",
        "--query",
        "api-version=2024-10-21",
    )
    cfg = config_mod.load(isolated_home / "config.toml")
    assert cfg.providers["openai"].base_url == "https://api.openai.com/v1"
    assert cfg.providers["local"].base_url == "http://localhost:11434/v1"
    assert cfg.providers["azure"].query == {"api-version": "2024-10-21"}
    listed = json.loads(ok("providers", "list", "--json"))
    assert {p["name"]: p["key"] for p in listed} == {
        "mock": "not needed",
        "openai": "missing",
        "local": "missing",
        "azure": "missing",
    }
    dup = aigw("providers", "add", "openai", "--type", "openai")
    assert dup.exit_code == 1 and "already exists" in dup.output
    bad = aigw("providers", "add", "x", "--type", "nope")
    assert bad.exit_code == 1 and "--type must be one of" in bad.output
    ok("providers", "remove", "local")
    assert "local" not in config_mod.load(isolated_home / "config.toml").providers
    assert aigw("providers", "remove", "local").exit_code == 1


def test_set_key_prompt_stdin_and_lookup_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_url: str
) -> None:
    statedb.init_home(store_url)
    ok("providers", "add", "openai", "--type", "openai")
    out = ok("providers", "set-key", "openai", input="sk-from-prompt\n")
    assert "sk-from-prompt" not in out
    assert keyring.get_password("aigw", "openai") == "sk-from-prompt"
    ok("providers", "set-key", "openai", "--stdin", input="sk-from-stdin\n")
    assert keyring.get_password("aigw", "openai") == "sk-from-stdin"
    assert json.loads(ok("providers", "list", "--json"))[1]["key"] == "keyring"
    # systemd credential beats the keyring; the env var beats both.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "aigw-openai").write_text("sk-from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    from aigw import secrets

    assert secrets.lookup("openai") == ("sk-from-systemd", "systemd credential aigw-openai")
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", "sk-from-env")
    assert secrets.lookup("openai") == ("sk-from-env", "env AIGW_OPENAI_API_KEY")
    assert secrets.env_var_name("my-azure.eu") == "AIGW_MY_AZURE_EU_API_KEY"
    # remove also forgets the stored key
    ok("providers", "remove", "openai")
    assert keyring.get_password("aigw", "openai") is None


def test_set_key_without_keyring_backend_names_the_alternatives(isolated_home: Path) -> None:
    ok("init")
    ok("providers", "add", "openai", "--type", "openai")
    keyring.set_keyring(fail.Keyring())
    result = aigw("providers", "set-key", "openai", "--stdin", input="sk-x\n")
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "no OS keyring backend" in flat
    assert "AIGW_OPENAI_API_KEY" in flat and "LoadCredential=aigw-openai" in flat
    assert "sk-x" not in result.output
    # Said before asking for the secret, not after.
    prompted = aigw("providers", "set-key", "openai", input="sk-y\n")
    assert prompted.exit_code == 1 and "API key for" not in prompted.output


def test_keys_create_list_revoke_rotate_json(isolated_home: Path, store_url: str) -> None:
    statedb.init_home(store_url)
    created = json.loads(
        ok(
            "keys",
            "create",
            "--team",
            "frontend",
            "--app",
            "web",
            "--name",
            "prod",
            "--expires",
            "30d",
            "--json",
        )
    )
    assert {"id", "key", "team", "app"} <= set(created)
    assert created["key"].startswith("gw-") and created["team"] == "frontend"
    assert created["expires_at"] is not None
    listed = json.loads(ok("keys", "list", "--json"))
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and created["key"] not in ok("keys", "list")
    if store_url:  # only its hash is stored
        assert created["key"] not in repr(statedb.sql("SELECT * FROM keys"))
    else:
        assert created["key"] not in (isolated_home / "state.db").read_bytes().decode("latin-1")
    rotated = json.loads(ok("keys", "rotate", created["id"], "--grace", "1h", "--json"))
    assert rotated["key"] != created["key"] and rotated["old"]["replaced_by"] == rotated["id"]
    assert rotated["old"]["state"] == "active"  # still inside its grace
    revoked = json.loads(ok("keys", "revoke", rotated["id"], "--json"))
    assert revoked["state"] == "revoked"
    missing = aigw("keys", "revoke", "key_nope")
    assert missing.exit_code == 1 and "no key with id" in missing.output
    bad = aigw("keys", "create", "--team", "x", "--expires", "soon")
    assert bad.exit_code == 1 and "not a duration" in bad.output
    human = ok("keys", "create", "--team", "ops")
    assert "cannot be shown again" in human


def test_invalid_config_names_file_key_and_problem(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    path = isolated_home / "config.toml"
    cases = {
        '[providers.openai]\ntype = "opneai"\n': "providers.openai.type: must be one of",
        '[server]\nport = "80"\n': "server.port: must be a int",
        "[server]\nprot = 80\n": "server.prot: unknown setting",
        '[models.fast]\nprovider = "nope"\nmodel = "m"\n': "models.fast.provider: names no "
        "configured provider",
        '[providers.x]\ntype = "openai"\nbase_url = "ftp://x"\n': "providers.x.base_url",
        "[upstream]\nidle_timeout = -1\n": "upstream.idle_timeout: must be a number >= 0.001",
        "not toml = = 1": "not valid TOML",
    }
    for text, expected in cases.items():
        path.write_text(text)
        result = aigw("providers", "list")
        assert result.exit_code == 1, text
        flat = " ".join(result.output.split())
        assert str(path) in flat.replace(" ", "") or str(path) in flat, flat
        assert expected in flat, (expected, flat)


def test_every_command_has_help() -> None:
    import typer

    root = typer.main.get_command(app)

    def walk(cmd: Any, path: list[str]) -> None:
        assert (cmd.help or "").strip(), f"`aigw {' '.join(path)}` has no help"
        for p in cmd.params:
            if p.param_type_name == "option":
                assert (p.help or "").strip(), f"`aigw {' '.join(path)}` {p.opts} has no help"
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])
            assert ok(*path, name, "--help")

    walk(root, [])


def test_man_page_is_current() -> None:
    import typer

    from aigw.cli import app
    from aigw.cli.manpage import render

    page = Path(__file__).parent.parent / "man" / "aigw.1"
    assert page.read_text() == render(typer.main.get_command(app)), (
        "man/aigw.1 is stale: run `make man`"
    )


async def run(*args: str) -> str:
    """The real `aigw` command in a subprocess; fails the test on a non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigw",
        *args,
        env={**os.environ, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (args, out.decode(), err.decode())
    return out.decode()


@pytest.mark.slow
async def test_end_to_end_cli_serve_sdk_report(
    isolated_home: Path, fake_openai: FakeOpenAI, store_url: str
) -> None:
    """The issue's user story: init, add provider, create key, serve, call, report."""
    await run("init")
    statedb.point_home_at(store_url)
    await run(
        "providers", "add", "openai", "--type", "openai", "--base-url", fake_openai.base_url + "/v1"
    )
    key = json.loads(await run("keys", "create", "--team", "frontend", "--app", "web", "--json"))[
        "key"
    ]
    cfg = config_mod.load(isolated_home / "config.toml")
    server = await start_server(isolated_home, cfg, {"AIGW_OPENAI_API_KEY": "sk-e2e"})
    try:

        def app_code() -> str:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
            with client:
                r = client.chat.completions.create(
                    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                s = client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                )
                return (r.choices[0].message.content or "") + "".join(
                    c.choices[0].delta.content or "" for c in s if c.choices
                )

        text = await asyncio.to_thread(app_code)
        assert text == "Hello from the fake provider." * 2
        assert fake_openai.last.headers["Authorization"] == "Bearer sk-e2e"
        # A key created while the server runs works within a second.
        late = json.loads(await run("keys", "create", "--team", "data", "--json"))["key"]
        await asyncio.sleep(1.0)
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=late, max_retries=0
        ) as client:
            await client.chat.completions.create(
                model="mock/echo", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        assert await server.stop() == 0
    assert any("listening on" in line for line in server.output)
    rows = json.loads(await run("report", "--by", "team", "--since", "1h", "--json"))
    by_team = {r["name"]: r for r in rows}
    assert by_team["frontend"]["requests"] == 2
    assert by_team["frontend"]["prompt_tokens"] == 22
    assert by_team["frontend"]["completion_tokens"] == 14
    assert by_team["frontend"]["cost_usd"] == "0.000011700"
    assert by_team["data"]["unpriced_requests"] == 1
    table = await run("report", "--by", "model")
    assert "openai/gpt-4o-mini" in table and "total" in table and "no known price" in table
    parsed = list(csv.DictReader(io.StringIO(await run("report", "--by", "app", "--csv"))))
    assert {r["name"] for r in parsed} == {"web", "-"}
    assert sum(int(r["requests"]) for r in parsed) == 3


@pytest.mark.slow
async def test_demo_runs_the_whole_job_offline() -> None:
    out = await run("demo")
    flat = " ".join(out.split())
    assert "Mock answer to: What is an AI gateway?" in flat
    assert "streamed: Mock answer to: Stream this answer word by word" in flat
    assert "openai.RateLimitError" in flat
    assert "5 answered, 3 got 429 rate_limit_exceeded" in flat
    assert "spend by team" in flat and "frontend" in flat and "total" in flat
