"""`aigw prices`: the table in use, the models it misses, LiteLLM imports; `-latest` names."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from aigw import paths
from aigw.pricing import PriceBook
from tests.test_report_money import append, ok, row

# The shape of LiteLLM's public model_prices_and_context_window.json (BerriAI/litellm):
# model name -> per-token USD prices and limits; Gemini API models keyed "gemini/NAME";
# "sample_spec" documents the fields. Prices here are made up for the test.
LITELLM: dict[str, Any] = {
    "sample_spec": {
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "max_input_tokens": "max input tokens",
        "mode": "one of: chat, embedding, completion, image_generation, ...",
    },
    "gpt-4o-mini": {  # same as the shipped price: unchanged
        "input_cost_per_token": 1.5e-07,
        "output_cost_per_token": 6e-07,
        "cache_read_input_token_cost": 7.5e-08,
        "litellm_provider": "openai",
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "mode": "chat",
    },
    "gpt-4.1": {  # a new price for a shipped model
        "input_cost_per_token": 1.8e-06,
        "output_cost_per_token": 7.2e-06,
        "cache_read_input_token_cost": 4.5e-07,
        "litellm_provider": "openai",
        "mode": "chat",
    },
    "gemini/gemini-nova-latest": {  # seen unpriced in the ledger: added
        "input_cost_per_token": 1.25e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-07,
        "litellm_provider": "gemini",
        "max_input_tokens": 1048576,
        "max_output_tokens": 65535,
        "mode": "chat",
    },
    "claude-nobody-uses": {  # neither priced nor seen: only with --model
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_read_input_token_cost": 3e-07,
        "litellm_provider": "anthropic",
        "mode": "chat",
    },
    "bedrock/some-model": {  # a provider aigw does not speak: skipped
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 1e-06,
        "litellm_provider": "bedrock",
        "mode": "chat",
    },
}


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gemini-flash-latest", "gemini-3.8-flash"),
        ("models/gemini-flash-latest", "gemini-3.8-flash"),
        ("gemini-flash-lite-latest", "gemini-3.5-flash-lite"),
        ("chat-latest", "chat-latest"),
        ("gpt-5.5-latest", "gpt-5.5"),
        ("gemini-pro-latest", "gemini-3.1-pro-preview"),
        ("models/gemini-pro-latest", "gemini-3.1-pro-preview"),
        ("gemini-4-argon", "gemini-4-argon"),
    ],
)
def test_latest_aliases_are_priced(name: str, family: str) -> None:
    price = PriceBook({}).lookup("p", name)
    assert price is not None and price.model == family


def test_gemini_4_argon_is_priced_at_the_standard_rate() -> None:
    """$4 / $20 / $0.20 cached from 2026-12-01, when the launch price ended."""
    price = PriceBook({}).lookup("gemini", "gemini-4-argon")
    assert price is not None and price.long is None
    assert (price.base.input, price.base.output, price.base.cached_input) == (
        4_000_000,
        20_000_000,
        200_000,
    )


def test_prices_list_shows_the_table_and_its_date(isolated_home: Path) -> None:
    ok("init")
    listed = json.loads(ok("prices", "list", "--json"))
    assert listed["taken"] == PriceBook({}).shipped.taken
    by_name = {m["model"]: m for m in listed["models"]}
    assert by_name["gemini-3.8-flash"]["aliases"] == ["gemini-flash-latest"]
    assert by_name["gemini-3.8-flash"]["cached_input"] == "0.075"
    # Anthropic's 5-minute and 1-hour cache writes; one write rate elsewhere.
    assert by_name["claude-sonnet-4-6"]["cache_write"] == "3.75"
    assert by_name["claude-sonnet-4-6"]["cache_write_1h"] == "6"
    assert by_name["gpt-5.6-sol"]["cache_write_1h"] == by_name["gpt-5.6-sol"]["cache_write"]
    assert "shipped table taken " + listed["taken"] in " ".join(ok("prices", "list").split())


def test_unpriced_lists_ledger_models_without_a_price(isolated_home: Path) -> None:
    ok("init")
    append(
        row("t", "gemini-nova-latest", None),
        row("t", "gemini-nova-latest", None),
        row("t", "gpt-4o-mini", 10),
    )
    # Recorded unpriced before this table priced them: no longer listed.
    append(row("t", "gemini-pro-latest", None), row("t", "gemini-4-argon", None))
    listed = json.loads(ok("prices", "list", "--unpriced", "--json"))
    assert listed["unpriced"] == [{"provider": "p", "model": "gemini-nova-latest", "requests": 2}]
    text = ok("prices", "list", "--unpriced")
    assert "gemini-nova-latest" in text and '[prices."MODEL"]' in text


def test_import_litellm_file_writes_what_changed(isolated_home: Path, tmp_path: Path) -> None:
    ok("init")
    append(row("t", "gemini-nova-latest", None))
    src = tmp_path / "model_prices_and_context_window.json"
    src.write_text(json.dumps(LITELLM))
    config = paths.resolve().config_file
    before = config.read_text()

    dry = " ".join(ok("prices", "import", str(src), "--dry-run").split())
    assert "1 added, 1 changed, 1 unchanged" in dry and "dry run" in dry
    assert config.read_text() == before

    out = " ".join(ok("prices", "import", str(src)).split())
    assert "add gemini-nova-latest: in 1.25, out 10, cached 0.125" in out
    assert "change gpt-4.1: in 2, out 8, cached 0.5, write 2 -> in 1.8, out 7.2" in out
    assert "1 added, 1 changed, 1 unchanged" in out
    prices = tomllib.loads(config.read_text())["prices"]
    assert set(prices) == {"gemini-nova-latest", "gpt-4.1"}
    assert prices["gpt-4.1"] == {"input": 1.8, "output": 7.2, "cached_input": 0.45}
    listed = {m["model"]: m for m in json.loads(ok("prices", "list", "--json"))["models"]}
    assert listed["gemini-nova-latest"]["source"] == "config"
    assert json.loads(ok("prices", "list", "--unpriced", "--json"))["unpriced"] == []

    # Again: nothing changes. --model brings in a model no one has used yet.
    assert "0 added, 0 changed, 3 unchanged" in " ".join(ok("prices", "import", str(src)).split())
    out = " ".join(ok("prices", "import", str(src), "--model", "claude-*").split())
    # No 1-hour price in the entry: Anthropic's 2x-input rule, not the 5-minute rate.
    assert "add claude-nobody-uses: in 3, out 15, cached 0.3, write 3.75, 1h write 6" in out
    assert "bedrock" not in out and "some-model" not in out


def test_import_refuses_a_file_that_is_not_litellms(isolated_home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aigw.cli import app

    ok("init")
    before = paths.resolve().config_file.read_text()
    bad = tmp_path / "prices.json"
    for text, says in [
        ("[1, 2]", "top level is not an object"),
        (
            '{"gpt-4.1": {"litellm_provider": "openai", "input_cost_per_token": "x"}}',
            "not a number",
        ),
        ("{not json", "cannot read it as JSON"),
    ]:
        bad.write_text(text)
        result = CliRunner().invoke(app, ["prices", "import", str(bad)], env={"COLUMNS": "200"})
        assert result.exit_code == 1 and says in " ".join(result.output.split()), result.output
    assert paths.resolve().config_file.read_text() == before
