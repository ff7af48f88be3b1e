"""Run `aigw serve` as a real subprocess (for crash tests and CLI end-to-end tests)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aigw import config as config_mod
from aigw.config import Config


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    port: int
    output: list[str]
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 15)

    async def wait_output(self, text: str, limit: float = 10) -> str:
        """The first line of output containing ``text``, waiting up to ``limit`` seconds."""
        async with asyncio.timeout(limit):
            while True:
                for line in self.output:
                    if text in line:
                        return line
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited without {text!r}:\n" + "".join(self.output))
                await asyncio.sleep(0.02)


async def start_server(
    home: Path, cfg: Config, env: dict[str, str] | None = None, *, log_level: str = "warning"
) -> ServerProcess:
    config_mod.save(cfg, home / "config.toml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigw",
        "serve",
        "--port",
        "0",
        "--log-level",
        log_level,
        env={**os.environ, "AIGW_HOME": str(home), "COLUMNS": "200", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        if not line:
            raise RuntimeError("aigw serve exited:\n" + "".join(output))
        output.append(line)
        m = re.search(r"listening on http://(?:[\d.]+|\[[0-9a-f:]+\]):(\d+)", line)
        if m:
            break
    server = ServerProcess(proc, int(m.group(1)), output, home)

    async def drain() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            output.append(raw.decode())

    server.drain_task = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return server
