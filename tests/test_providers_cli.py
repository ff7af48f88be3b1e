"""The CLI of issue 10's edges: key pools, regions on teams and keys, providers test."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aigw.cli import app
from tests.fakes.keys import KeyGate, openai_401
from tests.fakes.openai import FakeOpenAI

BAD, GOOD = "bad-key-0000000001", "good-key-000000002"


def aigw(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "200"})


def ok(*args: str, input: str | None = None) -> str:
    result = aigw(*args, input=input)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


def js(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def test_set_key_add_builds_a_pool_and_never_prints_a_key() -> None:
    ok("providers", "add", "openai", "--type", "openai")
    out = ok("providers", "set-key", "openai", "--stdin", input=BAD + "\n")
    out += ok("providers", "set-key", "openai", "--stdin", "--add", input=GOOD + "\n")
    assert "(2 keys)" in out
    listed = js("providers", "list")
    assert listed[0]["keys"] == 2 and listed[0]["key"] == "keyring (2 keys)"
    out += ok("providers", "list")
    # Without --add the pool is replaced.
    out += ok("providers", "set-key", "openai", "--stdin", input=GOOD + "\n")
    assert js("providers", "list")[0]["keys"] == 1
    assert BAD not in out and GOOD not in out


def test_providers_add_takes_a_region(isolated_home: Path) -> None:
    ok("providers", "add", "eu", "--type", "openai", "--region", "EU-West")
    assert 'region = "eu-west"' in (isolated_home / "config.toml").read_text()
    assert js("providers", "list")[0]["region"] == "eu-west"
    bad = aigw("providers", "add", "x", "--type", "openai", "--region", "e/u")
    assert bad.exit_code != 0 and "not a region" in bad.output


def test_teams_and_keys_take_regions() -> None:
    team = js("teams", "create", "eu", "--regions", "EU, eu-west,eu")
    assert team["regions"] == ["eu", "eu-west"]
    assert js("teams", "update", "eu", "--rpm", "5")["regions"] == ["eu", "eu-west"]
    assert js("teams", "update", "eu", "--regions", "none")["regions"] is None
    assert "regions" in ok("teams", "list")
    key = js("keys", "create", "--team", "eu", "--regions", "us")
    assert key["limits"]["regions"] == ["us"]
    updated = js("keys", "update", key["id"], "--regions", "us,eu")
    assert updated["limits"]["regions"] == ["us", "eu"]
    bad = aigw("teams", "update", "eu", "--regions", "e u")
    assert bad.exit_code != 0 and "not a region" in bad.output


@pytest.fixture
async def gated() -> AsyncIterator[tuple[FakeOpenAI, KeyGate]]:
    fake = FakeOpenAI()
    gate = KeyGate(fake).answer(BAD, openai_401(BAD))
    await fake.start()
    yield fake, gate
    await fake.close()


async def run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """The real `aigw` in a subprocess (CliRunner would nest event loops)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigw",
        *args,
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_providers_test_tries_every_key_and_redacts_errors(
    gated: tuple[FakeOpenAI, KeyGate],
) -> None:
    fake, gate = gated
    ok("providers", "add", "openai", "--type", "openai", "--base-url", fake.base_url + "/v1")
    env = {"AIGW_OPENAI_API_KEY": f"{BAD},{GOOD}"}
    code, out = await run("providers", "test", "openai", "--model", "gpt-4o-mini", env=env)
    assert code == 1, out
    assert "key 1 of 2 (401)" in out and "Incorrect API key provided: [redacted]" in out
    assert "key 2 of 2: gpt-4o-mini answered in" in out
    assert BAD not in out and GOOD not in out
    assert gate.seen == [BAD, GOOD]
    body = fake.last.body
    assert body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == 16

    code, out = await run("providers", "test", "openai", "--json", env=env)
    result = json.loads(out)
    assert code == 1 and result["ok"] is False
    assert result["model"] == fake.last.body["model"]  # the cheapest OpenAI chat model
    assert [(r["key"], r["ok"], r["status"]) for r in result["results"]] == [
        (1, False, 401),
        (2, True, 200),
    ]
    assert BAD not in out and GOOD not in out

    env = {"AIGW_OPENAI_API_KEY": GOOD}
    code, out = await run("providers", "test", "openai", "--model", "gpt-4o-mini", env=env)
    assert code == 0 and "answered in" in out


async def test_providers_test_reports_an_unreachable_provider() -> None:
    ok("providers", "add", "down", "--type", "anthropic", "--base-url", "http://127.0.0.1:9")
    code, out = await run("providers", "test", "down", env={"AIGW_DOWN_API_KEY": GOOD})
    assert code == 1 and "cannot connect" in out and GOOD not in out
