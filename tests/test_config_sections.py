"""config.toml written and read byte for byte as before the per-section split.

The golden files under ``tests/config_golden/`` were produced by the single-module
``aigw/config.py`` before it became a package, so any drift in the written text
(comments, order, formatting) or in what a document parses to (values, error
messages and which error wins) fails here. After an intended change, regenerate
them with ``python -m tests.test_config_sections`` and review the diff.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from aigw import config as config_mod
from aigw.config import Config, ModelConfig, PriceConfig, ProviderConfig, QuotaConfig
from aigw.config.base import Parsed, Reader, Section
from aigw.config.scrub import CustomDetector
from aigw.errors import ConfigError

GOLDEN = Path(__file__).parent / "config_golden"


def full_config() -> Config:
    """Every section and every optional field set away from its default."""
    cfg = config_mod.default_config()
    cfg.server.host = "0.0.0.0"
    cfg.server.port = 9000
    cfg.server.max_request_mb = 4.5
    cfg.server.drain_seconds = 12.0
    cfg.server.header_timeout = 3.0
    cfg.server.body_timeout = 30.0
    cfg.server.log_format = "json"
    cfg.upstream.connect_timeout = 2.5
    cfg.upstream.first_byte_timeout = 60.0
    cfg.upstream.idle_timeout = 15.0
    cfg.store.url = "postgresql://aigw@db.internal:5432/aigw"
    cfg.ledger.synchronous = "full"
    cfg.ledger.keep_rows = "30d"
    cfg.ledger.keep_rollups = "forever"
    cfg.counters.url = "redis://aigw@cache.internal:6379/0"
    cfg.counters.on_unavailable = "local"
    cfg.counters.prefix = "gw1:"
    cfg.metrics.require_admin_key = True
    cfg.translation.strict = False
    cfg.translation.default_max_tokens = 2048
    cfg.providers["openai"] = ProviderConfig("openai", "openai", "https://api.openai.com/v1")
    cfg.providers["azure"] = ProviderConfig(
        name="azure",
        type="openai",
        base_url="https://x.openai.azure.com/openai/deployments/gpt4o",
        headers={"x-team": "ml", "x-other": "two words"},
        query={"api-version": "2024-10-21"},
        auth_header="api-key",
    )
    cfg.providers["claude"] = ProviderConfig("claude", "anthropic", "https://api.anthropic.com")
    cfg.providers["gem.ini"] = ProviderConfig(
        "gem.ini", "gemini", "https://generativelanguage.googleapis.com"
    )
    cfg.models["fast"] = ModelConfig("fast", "azure", "gpt-4o")
    cfg.models["smart-1.5"] = ModelConfig("smart-1.5", "claude", "claude-sonnet-4-6")
    cfg.prices["azure/gpt-4o"] = PriceConfig(2.5, 10.0, 1.25, 3.0)
    cfg.prices["my-model"] = PriceConfig(input=0.15, output=0.6)
    cfg.prices["claude/claude-sonnet-4-6"] = PriceConfig(3.0, 15.0, cache_write=3.75)
    cfg.limits.burst = 0.25
    cfg.limits.default_output_tokens = 0
    cfg.limits.queue_max_wait = 5.0
    cfg.limits.low_priority_share = 0.3
    cfg.limits.persist_interval = 0.5
    cfg.budgets.timezone = "UTC"
    cfg.budgets.period = "week"
    cfg.budgets.alert_at = [25, 90]
    cfg.budgets.unpriced = "allow"
    cfg.budgets.max_output_tokens = 8192
    cfg.budgets.prompt_margin = 2.0  # accepted, never written
    cfg.alerts.webhook_url = "https://hooks.example.com/T000/B000"
    cfg.alerts.timeout = 3.5
    cfg.alerts.retries = 0
    cfg.alerts.queue_size = 10
    cfg.quotas["openai"] = QuotaConfig("openai", rpm=10_000, tpm=2_000_000)
    cfg.quotas["openai/gpt-4o"] = QuotaConfig("openai/gpt-4o", rpm=500)
    cfg.quotas["claude/claude-sonnet-4-6"] = QuotaConfig("claude/claude-sonnet-4-6", tpm=40_000)
    cfg.cache.mode = "deterministic"
    cfg.cache.ttl = 86400
    cfg.cache.max_size = 2 << 30
    cfg.cache.shared = True
    cfg.scrub.restore = False
    cfg.scrub.phone_region = "DE"
    cfg.scrub.actions["email"] = "block"
    cfg.scrub.actions["ip"] = "off"
    cfg.scrub.custom["employee_id"] = CustomDetector("EMP-[0-9]{6}", "redact")
    cfg.otel.enabled = True
    cfg.otel.endpoint = "http://collector:4318/v1/traces"
    cfg.otel.service_name = "aigw-eu"
    cfg.otel.sample_ratio = 0.25
    return cfg


WRITTEN = {
    "default.toml": config_mod.default_config,
    "full.toml": full_config,
    "empty.toml": Config,
}

# Documents fed to parse(): each golden result is the parsed Config's repr or the error.
P = '[providers.p]\ntype = "mock"\n'
DOCUMENTS = [
    "",
    "server = 5",
    "providers = 3",
    "foo = 1",
    "foo = 1\n[server]\nport = -1",
    "[server]\nport = 'x'",
    "[server]\nport = 70000",
    "[server]\nport = true",
    "[server]\nport = 0\nhost = '::'\ndrain_seconds = 5\nbody_timeout = 0.1",
    "[server]\nmax_request_mb = 0",
    "[server]\ndrain_seconds = -1",
    "[server]\nheader_timeout = 0.01",
    "[server]\nbody_timeout = nan",
    "[server]\nhost = 5",
    "[server]\nhots = 'x'",
    "[upstream]\nconnect_timeout = 0",
    "[upstream]\nfirst_byte_timeout = 'x'",
    "[upstream]\nidle_timeout = inf",
    "[upstream]\nidle = 1",
    "[upstream]\nconnect_timeout = 1\nfirst_byte_timeout = 2\nidle_timeout = 3",
    "[ledger]\nsynchronous = 'off'",
    "[counters]\nurl = 'redis://:hunter2@cache:6379/0'",
    "[counters]\nurl = 'http://cache:6379'",
    "[counters]\nurl = 'redis://cache:99999'",
    "[counters]\nurl = 'redis://'",
    "[counters]\non_unavailable = 'ignore'",
    "[counters]\nprefix = ''",
    "[counters]\nurl = 'unix:///run/redis.sock'\non_unavailable = 'local'",
    "[ledger]\nsynchronous = 1",
    "[ledger]\nsynchronous = 'full'",
    "[ledger]\nsync = 'full'",
    "[metrics]\nrequire_admin_key = true",
    "[metrics]\nrequire_admin_key = 'yes'",
    "[metrics]\nrequire_key = true",
    "[translation]\nstrict = 'yes'",
    "[translation]\nstrict = 1",
    "[translation]\ndefault_max_tokens = 0",
    "[translation]\ndefault_max_tokens = 1.5",
    "[translation]\nstrict = false\ndefault_max_tokens = 1",
    "[providers]\nx = 5",
    "[providers.x]\nbase_url = 'http://a'",
    "[providers.x]\ntype = 'azure'",
    "[providers.x]\ntype = 'openai'\nbase_url = 'ftp://a'",
    "[providers.x]\ntype = 'openai'\nbase_url = 'http://a/v1///'",
    "[providers.x]\ntype = 'anthropic'",
    "[providers.x]\ntype = 'gemini'",
    "[providers.x]\ntype = 'mock'\nbase_url = 'anything'",
    "[providers.x]\ntype = 'openai'\nheaders = {a = 1}",
    "[providers.x]\ntype = 'openai'\nheaders = 5",
    "[providers.x]\ntype = 'openai'\nquery = {v = '1'}\nheaders = {h = 'v'}",
    "[providers.x]\ntype = 'openai'\nauth_header = 5",
    "[providers.x]\ntype = 'openai'\nauth_header = 'api-key'",
    "[providers.x]\ntype = 'openai'\nkey = 'sk-secret'",
    '[models]\n"a/b" = 5',
    '[models."a/b"]\nprovider = "p"\nmodel = "m"',
    '[models."a b"]\nprovider = "p"\nmodel = "m"',
    '[models."a..b"]\nprovider = "p"\nmodel = "m"',
    '[models.""]\nprovider = "p"\nmodel = "m"',
    "[models]\nx = 5",
    '[models.x]\nmodel = "m"',
    '[models.x]\nprovider = "nope"\nmodel = "m"',
    P + '[models.x]\nprovider = "nope"\nmodel = "m"',
    P + '[models.x]\nprovider = "p"',
    P + '[models.x]\nprovider = "p"\nmodel = ""',
    P + '[models.x]\nprovider = "p"\nmodel = "m"\nextra = 1',
    P + '[models.x]\nprovider = "p"\nmodel = "m"\n[models."y@2"]\nprovider = "p"\nmodel = "n"',
    '[models.x]\nprovider = "p"\nmodel = "m"\n' + P,
    P + '[models.x]\nprovider = "p"\nmodel = "m"\ncontext_window = 32000\ntools = false',
    P + '[models.x]\nprovider = "p"\nmodel = "m"\ncontext_window = -1',
    P + '[models.x]\nprovider = "p"\nmodel = "m"\nvision = "no"',
    "[providers.x]\ntype = 'openai'\nregion = 'EU-West'",
    "[providers.x]\ntype = 'openai'\nregion = 'e u'",
    "[providers.x]\ntype = 'openai'\nregion = 5",
    "[prices]\nx = 5",
    "[prices.x]\noutput = 1",
    "[prices.x]\ninput = 1",
    "[prices.x]\ninput = -1\noutput = 1",
    "[prices.x]\ninput = 1\noutput = 1\ncached_input = -1",
    "[prices.x]\ninput = 1\noutput = 1\ncache_write = 'x'",
    "[prices.x]\ninput = 1\noutput = 1\nextra = 1",
    "[prices.x]\ninput = 1\noutput = 2\ncached_input = 0.5\ncache_write = 0",
    '[prices."p/m"]\ninput = 0\noutput = 0',
    "[limits]\nburst = 2",
    "[limits]\nburst = 0",
    "[limits]\nlow_priority_share = 1.5",
    "[limits]\nlow_priority_share = 0",
    "[limits]\ndefault_output_tokens = -1",
    "[limits]\ndefault_output_tokens = 1.0",
    "[limits]\npersist_interval = 0.01",
    "[limits]\nqueue_max_wait = -1",
    "[limits]\nqueue_wait = 3",
    "[limits]\nburst = 0.5\ndefault_output_tokens = 0\nqueue_max_wait = 0\n"
    "low_priority_share = 1\npersist_interval = 0.05",
    '[budgets]\ntimezone = "Mars/Olympus"',
    '[budgets]\ntimezone = "utc"',
    '[budgets]\nperiod = "year"',
    "[budgets]\nalert_at = 50",
    "[budgets]\nalert_at = [50, 120]",
    "[budgets]\nalert_at = [true]",
    "[budgets]\nalert_at = [80, 50, 50]",
    "[budgets]\nalert_at = []",
    '[budgets]\nunpriced = "ignore"',
    "[budgets]\nmax_output_tokens = 0",
    "[budgets]\nprompt_margin = 0.5",
    "[budgets]\nprompt_margin = 3",
    "[budgets]\nmargin = 3",
    '[alerts]\nwebhook_url = "hooks.slack.com"',
    '[alerts]\nwebhook_url = "http://h"\ntimeout = 1\nretries = 20\nqueue_size = 1',
    "[alerts]\nretries = 99",
    "[alerts]\nretries = -1",
    "[alerts]\nqueue_size = 0",
    "[alerts]\ntimeout = 0",
    "[alerts]\nurl = 'x'",
    "[quotas]\nnope = 5",
    '[quotas."nope"]\nrpm = 5',
    P + "[quotas]\np = 5",
    P + '[quotas."p"]\n',
    P + '[quotas."p"]\nrpm = 0',
    P + '[quotas."p"]\ntpm = -1',
    P + '[quotas."p"]\nrpm = 1.5',
    P + '[quotas."p/"]\nrpm = 1',
    P + '[quotas."p"]\nrpm = 1\nrps = 2',
    P + '[quotas."p"]\nrpm = 1\n[quotas."p/m/x"]\ntpm = 7',
    '[quotas."p"]\nrpm = 1\n' + P,
    "[server]\nport = -1\n[upstream]\nconnect_timeout = 0",
    "[limits]\nburst = 2\n[budgets]\nperiod = 'year'",
    "[quotas.nope]\nrpm = 1\n[server]\nport = 'x'",
    "[cache]\nmode = 'sometimes'",
    "[cache]\nttl = 'soon'",
    "[cache]\nmax_size = '1XB'",
    "[cache]\nshared = 1",
    "[cache]\nmode = 'all'\nttl = 90\nmax_size = 1048576\nshared = true",
    "[cache]\nmode = 'deterministic'\nttl = '15m'\nmax_size = '64MB'",
    "[scrub]\nrestore = false\nphone_region = 'GB'\n[scrub.actions]\nemail = 'block'",
    "[scrub]\nrestore = 'yes'",
    "[scrub]\nphone_region = 'usa'",
    "[scrub.actions]\nemail = 'nuke'",
    "[scrub.actions]\npassport = 'log'",
    "[scrub.custom.emp]\npattern = 'EMP-[0-9]{6}'",
    "[scrub.custom.emp]\npattern = 'EMP-[0-9]{6}'\naction = 'block'\nextra = 1",
    "[scrub.custom.emp]\naction = 'log'",
    "[scrub.custom.emp]\npattern = '('",
    "[scrub.custom.emp]\npattern = 'x*'",
    "[scrub.custom.Emp]\npattern = 'x'",
    "[scrub.custom.card]\npattern = 'x'",
]


def outcome(text: str) -> str:
    try:
        return repr(config_mod.parse(tomllib.loads(text), "c.toml"))
    except ConfigError as exc:
        return f"ConfigError: {exc}"


def parsed() -> list[dict[str, str]]:
    return [{"toml": text, "result": outcome(text)} for text in DOCUMENTS]


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_written_file_is_unchanged(name: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cfg = WRITTEN[name]()
    config_mod.save(cfg, path)
    assert path.read_text(encoding="utf-8") == (GOLDEN / name).read_text(encoding="utf-8")
    assert config_mod.render(cfg) == (GOLDEN / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_written_file_reads_back(name: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cfg = WRITTEN[name]()
    config_mod.save(cfg, path)
    back = config_mod.load(path)
    assert back.path == path
    back.path = None
    cfg.budgets.prompt_margin = back.budgets.prompt_margin  # not written (obsolete)
    assert back == cfg


def test_parse_results_are_unchanged() -> None:
    want = json.loads((GOLDEN / "parse.json").read_text(encoding="utf-8"))
    assert [case["toml"] for case in want] == DOCUMENTS
    for case, got in zip(want, parsed(), strict=True):
        assert got == case


def test_sections_are_config_fields_in_file_order() -> None:
    names = [f.name for f in fields(Config)]
    assert names[0] == "path"
    assert [name for name, _ in config_mod.SECTIONS] == names[1:]
    assert list(config_mod.to_dict(Config())) == names[1:]
    for name, section in config_mod.SECTIONS:
        assert all(line.startswith("# ") for line in section.comment.splitlines()), name


@pytest.mark.parametrize(("name", "section"), config_mod.SECTIONS)
def test_each_section_reads_back_what_it_writes(name: str, section: Section[Any]) -> None:
    full = getattr(full_config(), name)
    parsed = Parsed()
    for earlier_name, earlier in config_mod.SECTIONS:  # what a section may refer to
        parsed[earlier] = getattr(full_config(), earlier_name)
    r = Reader("c.toml", section.write(full), name)
    back = section.read(r, parsed)
    r.done()
    if name == "budgets":
        back.prompt_margin = full.prompt_margin  # obsolete: read, never written
    assert back == full
    assert section.default() == getattr(Config(), name)


def _regenerate() -> None:
    for name, make in WRITTEN.items():
        (GOLDEN / name).write_text(config_mod.render(make()), encoding="utf-8")
    text = json.dumps(parsed(), indent=1, ensure_ascii=False) + "\n"
    (GOLDEN / "parse.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    _regenerate()
