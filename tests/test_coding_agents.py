"""Claude Code, the real CLI from npm, through the gateway to OpenAI and Gemini targets.

The setup installs ``@anthropic-ai/claude-code`` once into the pytest cache (later runs
reuse it), then drives ``claude -p`` at a real gateway whose model aliases point at the
fake providers. Each fake answers with a tool call first and with text once the request
carries the tool's result, so Claude Code really runs its Read tool on a file in a temp
dir in between. Claude Code reaches nothing but the gateway: HOME is a temp dir and the
environment holds only what it needs, with auto-update, telemetry, error reporting and
other nonessential traffic off.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aigw.usage import Usage
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Reply, ToolLoop
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

# The version the request fixtures in tests/fixtures/claude_code/ were captured from;
# AIGW_CLAUDE_CODE_VERSION=latest tries the newest.
VERSION = os.environ.get("AIGW_CLAUDE_CODE_VERSION", "2.1.197")
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        NODE is None or NPM is None,
        reason="Claude Code end-to-end tests need node and npm (to install it from npm)",
    ),
]

# Every switch Claude Code has for traffic that is not the model call itself.
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
}


@pytest.fixture(scope="session")
def claude(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``claude`` executable, installed from npm once and kept in the pytest cache."""
    cache = getattr(request.config, "cache", None)
    root = (
        cache.mkdir(f"claude-code-{VERSION}")
        if cache is not None
        else tmp_path_factory.mktemp("claude-code")
    )
    exe = root / "node_modules" / ".bin" / "claude"
    if not exe.exists():
        assert NPM is not None
        done = subprocess.run(
            [
                NPM,
                "install",
                "--prefix",
                str(root),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"@anthropic-ai/claude-code@{VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not exe.exists():
            pytest.fail(f"npm install @anthropic-ai/claude-code failed:\n{done.stderr[-2000:]}")
    return exe


async def run_claude(
    exe: Path, gw: RunningGateway, key: str, model: str, prompt: str, workdir: Path
) -> list[dict[str, Any]]:
    """``claude -p`` against the gateway; its stream-json events."""
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gw.url,
        "ANTHROPIC_API_KEY": key,
        # Background calls (titles, summaries) would use a Haiku model: the same alias.
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        **QUIET,
    }
    proc = await asyncio.create_subprocess_exec(
        str(exe),
        "-p",
        prompt,
        "--model",
        model,
        "--allowedTools",
        "Read",
        "--output-format",
        "stream-json",
        "--verbose",
        cwd=workdir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"claude exited {proc.returncode}:\n{err.decode()[-2000:]}"
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


def blocks(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Content blocks of ``kind`` in the assistant messages Claude Code received."""
    return [
        b
        for e in events
        if e.get("type") == "assistant"
        for b in e["message"]["content"]
        if b.get("type") == kind
    ]


def tool_results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        b
        for e in events
        if e.get("type") == "user"
        for b in e["message"]["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


async def ledger(gw: RunningGateway) -> list[tuple[Any, ...]]:
    rows = await gw.fetchall(
        "SELECT model, provider, upstream_model, status, stream, prompt_tokens,"
        " completion_tokens, reasoning_tokens, usage_estimated FROM ledger ORDER BY id"
    )
    return [tuple(r) for r in rows]


def agent_script(workdir: Path, marker: str, thought: str = "") -> tuple[ToolLoop, Usage, Usage]:
    (workdir / "note.txt").write_text(f"The secret word is {marker}.\n")
    first = Usage(prompt_tokens=2345, completion_tokens=41, reasoning_tokens=17 if thought else 0)
    second = Usage(prompt_tokens=2456, completion_tokens=12)
    loop = ToolLoop(
        call=Reply(
            tool_calls=[("Read", {"file_path": str(workdir / "note.txt")})],
            usage=first,
            thought=thought,
        ),
        answer=Reply(text=f"The note says {marker}.", usage=second),
    )
    return loop, first, second


async def test_claude_code_to_openai_tool_round_trip(
    claude: Path, start_gateway: StartGateway, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    # A model name that is not Claude's: Claude Code then sends mid-conversation system
    # entries, adaptive thinking and output_config.effort.
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")},
        models={"gpt-5.5": ("openai", "gpt-5.5")},
    )
    work = tmp_path / "work"
    work.mkdir()
    fake_openai.default, first, second = agent_script(work, "aigw-e2e-7d1f")
    key = await gw.key(team="devs", app="claude-code")

    events = await run_claude(
        claude, gw, key, "gpt-5.5", "What is the secret word in note.txt?", work
    )

    assert events[-1]["type"] == "result" and events[-1]["result"] == "The note says aigw-e2e-7d1f."
    (use,) = blocks(events, "tool_use")
    assert use["name"] == "Read" and use["input"] == {"file_path": str(work / "note.txt")}
    (result,) = tool_results(events)
    assert "aigw-e2e-7d1f" in json.dumps(result)  # Claude Code ran Read on the real file
    calls = [r.body for r in fake_openai.requests]
    assert len(calls) == 2
    for body in calls:
        assert body["model"] == "gpt-5.5" and body["stream"] is True
        assert body["reasoning_effort"] == "high" and "thinking" not in body
        assert body["max_completion_tokens"] == 32000 and "max_tokens" not in body
        assert len(body["tools"]) > 10
    # The tool's output went back to OpenAI as a tool message answering its call.
    tool_msgs = [m for m in calls[1]["messages"] if m["role"] == "tool"]
    assert tool_msgs[0]["tool_call_id"] == "call_0" and "aigw-e2e-7d1f" in tool_msgs[0]["content"]
    # A system entry in the middle of the conversation kept its place.
    roles = [m["role"] for m in calls[0]["messages"]]
    assert roles[0] == "system" and "system" in roles[1:]
    assert await ledger(gw) == [
        ("gpt-5.5", "openai", "gpt-5.5", 200, 1, u.prompt_tokens, u.completion_tokens, 0, 0)
        for u in (first, second)
    ]


async def test_claude_code_to_gemini_with_thinking(
    claude: Path,
    start_gateway: StartGateway,
    fake_gemini: FakeGemini,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The README's recipe: Claude Code keeps asking for claude-sonnet-4-5; an alias
    # sends it to another provider.
    monkeypatch.setenv("AIGW_GEMINI_API_KEY", "gemini-upstream-key")
    gw = await start_gateway(
        providers={"gemini": ("gemini", fake_gemini.base_url)},
        models={"claude-sonnet-4-5": ("gemini", "gemini-2.5-flash")},
    )
    work = tmp_path / "work"
    work.mkdir()
    thought = "The user wants the word in note.txt; reading it first."
    fake_gemini.default, first, second = agent_script(work, "aigw-e2e-93bc", thought)
    key = await gw.key(team="devs", app="claude-code")

    events = await run_claude(
        claude, gw, key, "claude-sonnet-4-5", "What is the secret word in note.txt?", work
    )

    assert events[-1]["type"] == "result" and events[-1]["result"] == "The note says aigw-e2e-93bc."
    # Gemini's thought summary reached Claude Code as a thinking block.
    assert [b["thinking"] for b in blocks(events, "thinking")] == [thought]
    (use,) = blocks(events, "tool_use")
    assert use["name"] == "Read"
    assert "aigw-e2e-93bc" in json.dumps(tool_results(events))
    calls = [r for r in fake_gemini.requests if r.path.endswith(":streamGenerateContent")]
    assert len(calls) == 2
    for call in calls:
        # Claude Code's budget_tokens 31999, capped at Gemini 2.5 Flash's ceiling.
        config = call.body["generationConfig"]
        assert config["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}
        assert config["maxOutputTokens"] == 32000
    response = calls[1].body["contents"][-1]["parts"][0]["functionResponse"]
    assert response["name"] == "Read" and "aigw-e2e-93bc" in json.dumps(response)
    assert await ledger(gw) == [
        (
            "claude-sonnet-4-5",
            "gemini",
            "gemini-2.5-flash",
            200,
            1,
            u.prompt_tokens,
            u.completion_tokens,
            u.reasoning_tokens,
            0,
        )
        for u in (first, second)
    ]
