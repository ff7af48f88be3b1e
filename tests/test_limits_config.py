"""The [limits], [budgets], [alerts] and [quotas] config sections: validation and round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

import pytest

from aigw import config as config_mod
from aigw.config import Config, ProviderConfig, QuotaConfig
from aigw.errors import ConfigError


def parse(text: str) -> Config:
    return config_mod.parse(tomllib.loads(text), "c.toml")


def test_defaults_and_round_trip(tmp_path: Path) -> None:
    cfg = config_mod.default_config()
    cfg.providers["openai"] = ProviderConfig("openai", "openai", "https://api.openai.com/v1")
    cfg.quotas["openai"] = QuotaConfig("openai", rpm=10_000, tpm=2_000_000)
    cfg.quotas["openai/gpt-4o"] = QuotaConfig("openai/gpt-4o", rpm=500)
    cfg.budgets.timezone = "Europe/Berlin"
    cfg.budgets.alert_at = [25, 90]
    cfg.alerts.webhook_url = "https://hooks.example.com/T000/B000"
    cfg.limits.burst = 0.25
    path = tmp_path / "c.toml"
    config_mod.save(cfg, path)
    back = config_mod.load(path)
    back.path = cfg.path = None
    assert back == cfg
    text = path.read_text()
    assert "[limits]" in text and "[budgets]" in text and '[quotas."openai/gpt-4o"]' in text
    assert back.quotas["openai/gpt-4o"].model == "gpt-4o"
    assert back.quotas["openai"].model is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[limits]\nburst = 2", "limits.burst: must be at most 1"),
        ("[limits]\nburst = 0", "limits.burst: must be a number >= 0.001"),
        ("[limits]\nlow_priority_share = 1.5", "limits.low_priority_share: must be at most 1"),
        ("[limits]\nqueue_wait = 3", "limits.queue_wait: unknown setting"),
        ('[budgets]\ntimezone = "Mars/Olympus"', "budgets.timezone: unknown time zone"),
        ('[budgets]\nperiod = "year"', 'budgets.period: must be "day", "week" or "month"'),
        ("[budgets]\nalert_at = [50, 120]", "budgets.alert_at: must be a list of percents"),
        ('[budgets]\nunpriced = "ignore"', 'budgets.unpriced: must be "refuse" or "allow"'),
        ("[budgets]\nprompt_margin = 0.5", "budgets.prompt_margin: must be a number >= 1"),
        ('[alerts]\nwebhook_url = "hooks.slack.com"', "alerts.webhook_url: must start with"),
        ("[alerts]\nretries = 99", "alerts.retries: must be between 0 and 20"),
        ('[quotas."nope"]\nrpm = 5', "quotas.nope: must be PROVIDER or PROVIDER/MODEL"),
        ('[providers.mock]\ntype = "mock"\n[quotas."mock"]\n', "quotas.mock: sets neither"),
        ('[providers.mock]\ntype = "mock"\n[quotas."mock"]\nrpm = 0', "quotas.mock.rpm: must be"),
        (
            '[providers.mock]\ntype = "mock"\n[quotas."mock/"]\nrpm = 1',
            "PROVIDER or PROVIDER/MODEL",
        ),
    ],
)
def test_invalid_settings_are_named(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(toml)
    assert message in str(info.value)
    assert str(info.value).startswith("c.toml: ")


def test_utc_works_without_tzdata(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ZoneInfoNotFoundError(name)

    monkeypatch.setattr("aigw.config.budgets.ZoneInfo", missing)
    assert parse('[budgets]\ntimezone = "UTC"').budgets.timezone == "UTC"
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse('[budgets]\ntimezone = "Europe/Paris"')
