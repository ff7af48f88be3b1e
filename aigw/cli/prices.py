"""`aigw prices`: the price table, the models it misses, and imports from LiteLLM's."""

from __future__ import annotations

import fnmatch
import json as json_mod
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aigw.cli.common import console, load_config, parse_since, print_json, save_config, with_store
from aigw.config import PriceConfig
from aigw.errors import ConfigError
from aigw.pricing import Price, PriceBook

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.store.base import Store

app = typer.Typer(
    help="The price table: list it, find models with no price, import LiteLLM's prices.",
    no_args_is_help=True,
)

# LiteLLM's litellm_provider values for the APIs aigw's provider types speak.
IMPORTED_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
MICRO = Decimal("0.000001")


def per_million(micro_usd: int) -> str:
    """Integer micro-USD per million tokens -> USD per million, exact, no trailing zeros."""
    d = Decimal(micro_usd) / 1_000_000
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _price_dict(name: str, p: Price, source: str, aliases: list[str]) -> dict[str, Any]:
    t = p.base
    return {
        "model": name,
        "source": source,
        "aliases": aliases,
        "input": per_million(t.input),
        "output": per_million(t.output),
        "cached_input": per_million(t.cached_input),
        "cache_write": per_million(t.cache_write),
        "cache_write_1h": per_million(t.cache_write_1h),
        "long_context_threshold": p.long_threshold,
        "context_window": p.context_window,
        "max_output_tokens": p.max_output_tokens,
    }


@app.command("list")
def list_(
    unpriced: Annotated[
        bool,
        typer.Option(
            "--unpriced",
            help="Only models the ledger has seen that have no price (answered calls).",
        ),
    ] = False,
    since: Annotated[
        str,
        typer.Option("--since", help="With --unpriced: how far back to look (30d, 2026-11-01)."),
    ] = "30d",
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The prices in use (USD per million tokens): config overrides, then the shipped
    table, with the date the shipped table was taken."""
    cfg = load_config()
    book = PriceBook(cfg.prices)
    taken = book.shipped.taken
    if unpriced:
        start = parse_since(since, time.time())

        async def run(store: Store) -> list[tuple[str, str, int]]:
            return await store.reports.unpriced_models(start)

        # Priced since (an override added after the calls) is not listed.
        missing = [
            {"provider": prov, "model": model, "requests": n}
            for prov, model, n in with_store(run)
            if book.lookup(prov, model) is None
        ]
        if json:
            print_json({"taken": taken, "unpriced": missing})
            return
        if not missing:
            console.print(f"no model without a price in the ledger (--since {escape(since)})")
            return
        table = Table(title=f"models with no price (price table of {taken})")
        table.add_column("provider")
        table.add_column("model")
        table.add_column("requests", justify="right")
        for m in missing:
            table.add_row(escape(str(m["provider"])), escape(str(m["model"])), f"{m['requests']:,}")
        console.print(table)
        console.print(
            'Add a \\[prices."MODEL"] entry to config.toml, or `aigw prices import FILE` '
            "with LiteLLM's model_prices_and_context_window.json."
        )
        return
    rows: list[dict[str, Any]] = [
        _price_dict(name, p, "config", []) for name, p in sorted(book.overrides.items())
    ]
    aliases: dict[str, list[str]] = {}
    for name, p in book.shipped.prices.items():
        if name != p.model:
            aliases.setdefault(p.model, []).append(name)
    for name, p in sorted(book.shipped.prices.items()):
        if name == p.model:
            rows.append(_price_dict(name, p, "shipped", sorted(aliases.get(name, []))))
    if json:
        print_json({"taken": taken, "models": rows})
        return
    table = Table(title=f"prices, USD per million tokens (shipped table taken {taken})")
    for col in ("model", "input", "output", "cached in", "cache write", "1h write", "source"):
        table.add_column(col, justify="left" if col in ("model", "source") else "right")
    for r in rows:
        label = r["model"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        table.add_row(
            escape(label),
            r["input"],
            r["output"],
            r["cached_input"],
            r["cache_write"],
            r["cache_write_1h"],
            r["source"],
        )
    console.print(table)


# -- import ------------------------------------------------------------------------


@dataclass(slots=True)
class Imported:
    model: str
    price: PriceConfig


def _usd_per_million(entry: dict[str, Any], field: str, key: str) -> float | None:
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}: {field} is not a number")
    try:
        d = (Decimal(str(value)) * 1_000_000).quantize(MICRO, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise ConfigError(f"{key}: {field} is not a number") from None
    if d < 0:
        raise ConfigError(f"{key}: {field} is negative")
    return float(d)


def read_litellm(data: Any) -> list[Imported]:
    """Entries of LiteLLM's model_prices_and_context_window.json that aigw can use:
    chat/embedding models of the openai, anthropic and gemini APIs with per-token
    input and output prices. ``gemini/NAME`` keys become ``NAME``."""
    if not isinstance(data, dict):
        raise ConfigError("not a LiteLLM price file: the top level is not an object")
    out: dict[str, Imported] = {}
    for key, entry in data.items():
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        provider = IMPORTED_PROVIDERS.get(str(entry.get("litellm_provider", "")))
        if provider is None:
            continue
        inp = _usd_per_million(entry, "input_cost_per_token", key)
        outp = _usd_per_million(entry, "output_cost_per_token", key)
        if inp is None or (outp is None and entry.get("mode") != "embedding"):
            continue
        model = key.removeprefix(f"{provider}/")
        out[model] = Imported(
            model,
            PriceConfig(
                input=inp,
                output=outp or 0.0,
                cached_input=_usd_per_million(entry, "cache_read_input_token_cost", key),
                cache_write=_usd_per_million(entry, "cache_creation_input_token_cost", key),
                cache_write_1h=_usd_per_million(
                    entry, "cache_creation_input_token_cost_above_1hr", key
                )
                # Anthropic bills every 1-hour write at 2x input (its pricing page);
                # an entry without the 1h field must not drop it to the 5-minute rate.
                or (float(Decimal(str(inp)) * 2) if provider == "anthropic" else None),
            ),
        )
    return list(out.values())


def _same(a: PriceConfig, b: Price) -> bool:
    t = b.base
    return (
        per_million_f(a.input) == t.input
        and per_million_f(a.output) == t.output
        and per_million_f(a.cached_input if a.cached_input is not None else a.input)
        == t.cached_input
        and per_million_f(a.cache_write if a.cache_write is not None else a.input) == t.cache_write
        and per_million_f(
            a.cache_write_1h
            if a.cache_write_1h is not None
            else a.cache_write
            if a.cache_write is not None
            else a.input
        )
        == t.cache_write_1h
    )


def per_million_f(usd: float) -> int:
    return int(Decimal(str(usd)) * 1_000_000)


def _show(p: PriceConfig) -> str:
    parts = [f"in {p.input:g}", f"out {p.output:g}"]
    if p.cached_input is not None:
        parts.append(f"cached {p.cached_input:g}")
    if p.cache_write is not None:
        parts.append(f"write {p.cache_write:g}")
    if p.cache_write_1h is not None:
        parts.append(f"1h write {p.cache_write_1h:g}")
    return ", ".join(parts)


def _show_price(p: Price) -> str:
    t = p.base
    text = (
        f"in {per_million(t.input)}, out {per_million(t.output)}, "
        f"cached {per_million(t.cached_input)}, write {per_million(t.cache_write)}"
    )
    if t.cache_write_1h != t.cache_write:  # only Anthropic's models have a 1h rate
        text += f", 1h write {per_million(t.cache_write_1h)}"
    return text


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="LiteLLM's model_prices_and_context_window.json (download it yourself; "
            "aigw reads it offline).",
            exists=True,
            dir_okay=False,
        ),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="GLOB",
            help="Also import these models (globs, repeatable). By default only models "
            "aigw already prices or has seen unpriced in the ledger are imported.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
) -> None:
    """Write price overrides to config.toml (a prices."MODEL" table each) from LiteLLM's
    price file where they differ from the prices in use, and report what changed."""
    try:
        data = json_mod.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: cannot read it as JSON ({exc})") from None
    entries = read_litellm(data)
    cfg = load_config(required=True)
    book = PriceBook(cfg.prices)

    async def run(store: Store) -> list[tuple[str, str, int]]:
        return await store.reports.unpriced_models(None)

    seen = {m for _, m, _ in with_store(run)}
    wanted = set(book.shipped.prices) | set(cfg.prices) | seen
    globs = model or []
    added: list[str] = []
    changed: list[str] = []
    same = 0
    for e in sorted(entries, key=lambda e: e.model):
        if e.model not in wanted and not any(fnmatch.fnmatchcase(e.model, g) for g in globs):
            continue
        current = book.lookup("", e.model)
        if current is not None and _same(e.price, current):
            same += 1
            continue
        if current is None:
            added.append(f"{e.model}: {_show(e.price)}")
        else:
            note = ""
            if e.model not in cfg.prices and current.long is not None:
                note = " (the shipped long-context tier no longer applies)"
            changed.append(f"{e.model}: {_show_price(current)} -> {_show(e.price)}{note}")
        cfg.prices[e.model] = e.price
    verb = "would " if dry_run else ""
    for line in added:
        console.print(f"{verb}add     {escape(line)}")
    for line in changed:
        console.print(f"{verb}change  {escape(line)}")
    console.print(
        f"{len(added)} added, {len(changed)} changed, {same} unchanged "
        f"(USD per million tokens)" + (" - dry run, nothing written" if dry_run else "")
    )
    if (added or changed) and not dry_run:
        save_config(cfg)
