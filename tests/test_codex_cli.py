"""Issue 15: the real Codex CLI through the gateway to anthropic and gemini targets.

The setup installs ``@openai/codex`` from the npm registry once per session into the
pytest cache (skipped with the reason when node or npm are missing). ``codex exec``
then runs against the real gateway on a real socket, whose providers are the fake
anthropic and gemini servers: the model first calls Codex's shell tool
(``exec_command`` running ``echo hi``), Codex runs it and sends the output back, and
the model answers with text. Codex gets a throwaway HOME and CODEX_HOME, update checks
and analytics off, and a dead proxy for anything but 127.0.0.1, so nothing of it
reaches the internet.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aigw.usage import Usage
from tests.conftest import RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Inject, Reply
from tests.fakes.gemini import FakeGemini

# The version tests/fixtures/codex/ was captured with; AIGW_TEST_CODEX_VERSION=latest
# tries the newest.
CODEX_VERSION = os.environ.get("AIGW_TEST_CODEX_VERSION", "0.171.0")
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connects fail at once
ANSWER = "The command printed hi."


@pytest.fixture(scope="session")
def codex_bin(pytestconfig: pytest.Config) -> Path:
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("the Codex CLI end-to-end test needs node and npm on PATH")
    assert pytestconfig.cache is not None
    prefix = pytestconfig.cache.mkdir(f"codex-{CODEX_VERSION}")
    binary = prefix / "node_modules" / ".bin" / "codex"
    if not binary.exists() or CODEX_VERSION == "latest":
        package = f"@openai/codex@{CODEX_VERSION}"
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), package],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not binary.exists():
            pytest.skip(f"npm install {package} failed: {done.stderr[-500:]}")
    return binary


def codex_home(tmp_path: Path, base_url: str, model: str) -> Path:
    """A throwaway HOME with ~/.codex/config.toml pointing at the gateway."""
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    # The README's snippet, plus the switches that keep a test run offline.
    (home / ".codex" / "config.toml").write_text(
        f"""model = "{model}"
model_provider = "aigw"
check_for_update_on_startup = false

[model_providers.aigw]
name = "aigw gateway"
base_url = "{base_url}/v1"
env_key = "AIGW_API_KEY"
wire_api = "responses"
# Codex tries the Responses WebSocket first: the gateway answers 426 and it falls
# back to HTTPS at once.
supports_websockets = true

[analytics]
enabled = false
"""
    )
    return home


async def run_codex(
    binary: Path, home: Path, workdir: Path, key: str, prompt: str
) -> tuple[int, list[dict[str, Any]], str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "AIGW_API_KEY": key,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        env[var] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--ephemeral",
        "--json",
        "--color",
        "never",
        prompt,
        cwd=workdir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode is not None
    return proc.returncode, events, err.decode()


@pytest.mark.parametrize("model", ["m-anthropic", "m-gemini"])
async def test_codex_exec_runs_a_tool_and_answers(
    codex_bin: Path,
    trio: RunningGateway,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    tmp_path: Path,
    model: str,
) -> None:
    fake: FakeAnthropic | FakeGemini = fake_anthropic if model == "m-anthropic" else fake_gemini
    fake.then(
        Reply(tool_calls=[("exec_command", {"cmd": "echo hi"})], usage=Usage(1200, 30)),
        Reply(text=ANSWER, usage=Usage(1300, 8)),
    )
    key = await trio.key(team="devs", app="codex")
    workdir = tmp_path / "project"
    workdir.mkdir()
    home = codex_home(tmp_path, trio.url, model)

    code, events, stderr = await run_codex(codex_bin, home, workdir, key, "Run `echo hi`.")

    assert code == 0, stderr[-3000:]
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    commands = [i for i in items if i.get("type") == "command_execution"]
    assert len(commands) == 1, events
    assert "echo hi" in commands[0]["command"]
    assert (commands[0]["exit_code"], commands[0]["aggregated_output"]) == (0, "hi\n")
    messages = [i["text"] for i in items if i.get("type") == "agent_message"]
    assert messages == [ANSWER]
    # One WebSocket attempt (answered 426), then HTTPS: no retry storm.
    assert stderr.count("failed to connect to Responses WebSocket") <= 1, stderr[-3000:]

    # The tool round trip, as the provider saw it.
    assert len(fake.requests) == 2
    first, second = fake.requests[0].body, fake.requests[1].body
    if model == "m-anthropic":
        assert "exec_command" in [t["name"] for t in first["tools"]]
        use = second["messages"][-2]["content"][-1]
        result = second["messages"][-1]["content"][0]
        assert (use["type"], use["name"], use["input"]) == (
            "tool_use",
            "exec_command",
            {"cmd": "echo hi"},
        )
        assert (result["type"], result["tool_use_id"]) == ("tool_result", use["id"])
        assert "hi" in json.dumps(result["content"])
    else:
        declared = [f["name"] for t in first["tools"] for f in t.get("functionDeclarations", [])]
        assert "exec_command" in declared
        parts = [p for c in second["contents"] for p in c["parts"]]
        call = next(p["functionCall"] for p in parts if "functionCall" in p)
        response = next(p["functionResponse"] for p in parts if "functionResponse" in p)
        assert (call["name"], call["args"]) == ("exec_command", {"cmd": "echo hi"})
        assert response["name"] == "exec_command" and "hi" in json.dumps(response)

    # Both calls are in the ledger, exact, under the developer's key.
    rows = await trio.fetchall(
        "SELECT endpoint, model, provider, status, stream, prompt_tokens, completion_tokens,"
        " usage_estimated, team, app, cost_nusd FROM ledger ORDER BY id"
    )
    provider = model.removeprefix("m-")
    assert [tuple(r)[:10] for r in rows] == [
        ("responses", model, provider, 200, 1, 1200, 30, 0, "devs", "codex"),
        ("responses", model, provider, 200, 1, 1300, 8, 0, "devs", "codex"),
    ]
    assert all(r[10] is not None and r[10] > 0 for r in rows)
    # Codex's own count of the turn matches the ledger.
    usage = next(e["usage"] for e in events if e.get("type") == "turn.completed")
    assert (usage["input_tokens"], usage["output_tokens"]) == (2500, 38)


async def test_websocket_upgrade_is_refused_with_426(trio: RunningGateway) -> None:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(trio.url + "/v1/responses", headers=headers) as r,
    ):
        assert r.status == 426
        body = await r.json()
    assert body["error"]["code"] == "websocket_not_supported"
    assert "POST /v1/responses" in body["error"]["message"]


async def test_codex_shows_anthropic_thinking_as_reasoning(
    codex_bin: Path, trio: RunningGateway, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    recorded = json.loads(
        (
            Path(__file__).parent / "translate/payloads/anthropic/anthropic_stream_thinking.json"
        ).read_text()
    )
    raw = b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in recorded["events"]
    )
    fake_anthropic.then(Inject(raw, after=0))
    key = await trio.key()
    workdir = tmp_path / "project"
    workdir.mkdir()
    home = codex_home(tmp_path, trio.url, "m-anthropic")

    code, events, stderr = await run_codex(codex_bin, home, workdir, key, "Meaning of life?")

    assert code == 0, stderr[-3000:]
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    shown = [i for i in items if i["type"] != "error"]  # the unknown-model-metadata note
    assert [i["type"] for i in shown] == ["reasoning", "agent_message"], items
    thinking = "".join(
        e[1]["delta"].get("thinking", "")
        for e in recorded["events"]
        if e[0] == "content_block_delta"
    )
    text = "".join(
        e[1]["delta"].get("text", "") for e in recorded["events"] if e[0] == "content_block_delta"
    )
    assert shown[0]["text"].strip() == thinking.strip()
    assert shown[1]["text"] == text
    output = next(
        e[1]["usage"]["output_tokens"] for e in recorded["events"] if e[0] == "message_delta"
    )
    rows = await trio.fetchall(
        "SELECT endpoint, status, stream, prompt_tokens, completion_tokens FROM ledger"
    )
    assert [tuple(r) for r in rows] == [("responses", 200, 1, 42, output)]
