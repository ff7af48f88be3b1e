"""`aigw report`."""

from __future__ import annotations

import csv
import sys
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aigw import report as report_mod
from aigw.cli.common import console, load_config, parse_since, print_json, when, with_store
from aigw.cli.teams import print_budgets
from aigw.errors import AigwError
from aigw.model import ReportRow
from aigw.pricing import format_usd

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from aigw.store.base import Store


class By(StrEnum):
    team = "team"
    app = "app"
    key = "key"
    model = "model"
    provider = "provider"
    day = "day"


def report(
    by: Annotated[By, typer.Option("--by", help="Group rows by this.")] = By.team,
    since: Annotated[
        str,
        typer.Option(
            "--since", help="Start: a duration back from now (7d, 24h) or a date (2026-11-01)."
        ),
    ] = "7d",
    until: Annotated[
        str | None, typer.Option("--until", help="End (exclusive), same forms as --since.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON list for scripts.")] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print CSV for spreadsheets.")] = False,
    budgets_only: Annotated[
        bool,
        typer.Option(
            "--budgets",
            help="Only the budgets: each team's and key's budget, spend, remaining and "
            "fired alerts in its current period.",
        ),
    ] = False,
) -> None:
    """Spend and usage from the ledger, grouped by team, app, key, model, provider or day;
    then each budget's spend and remaining in its current period."""
    if json and csv_:
        raise AigwError("--json and --csv cannot be used together; choose one")
    now = time.time()
    start = parse_since(since, now)
    end = parse_since(until, now) if until else None
    if end is not None and end <= start:
        raise AigwError(f"--until ({until}) must be later than --since ({since})")
    group = str(by.value)
    cfg = load_config()

    async def run(
        store: Store,
    ) -> tuple[report_mod.Report, list[report_mod.BudgetRow], list[dict[str, Any]] | None]:
        if json and not budgets_only:
            rows = await report_mod.report_json(
                store, cfg, by=group, since=start, until=end, now=now
            )
            return report_mod.Report(group, start, end, []), [], rows
        if budgets_only:  # the budgets alone: no grouped report to build
            empty = report_mod.Report(group, start, end, [])
            return empty, await report_mod.budgets(store, cfg, now), None
        rep = await report_mod.build(store.reports, by=group, since=start, until=end)
        return rep, await report_mod.budgets(store, cfg, now), None

    rep, budgets, json_rows = with_store(run)
    if json_rows is not None:
        print_json(json_rows)
        return
    if budgets_only:
        if json:
            print_json([report_mod.budget_dict(b) for b in budgets])
        elif budgets:
            print_budgets(budgets)
        else:
            console.print("no budgets: aigw teams update TEAM --budget 100")
        return
    rows = [report_mod.row_dict(r, group) for r in rep.rows]
    if csv_:
        fields = [
            "name",
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "unpriced_requests",
            "cache_hits",
            "cache_misses",
            "saved_usd",
        ]
        writer = csv.DictWriter(
            sys.stdout, fieldnames=fields, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for r in rows:  # cost_usd: exact decimal string; empty when unknown
            writer.writerow(r)
        return
    print_table(rep)
    if budgets:
        print_budgets(budgets)


def _hits(r: ReportRow) -> str:
    """Cache hits and their share of cache lookups: '1,204 (37.5%)'."""
    rate = r.cache_hit_rate
    return f"{r.cache_hits:,}" + ("" if rate is None else f" ({rate * 100:.1f}%)")


def print_table(rep: report_mod.Report) -> None:
    """The report as a rich table with a totals footer and an unpriced warning."""
    group = rep.by
    end = rep.until
    title = f"spend by {group}, {when(rep.since)} – {when(end) if end else 'now'}"
    table = Table(title=title, show_footer=True)
    total = rep.total
    table.add_column(group, footer="total")
    table.add_column("requests", justify="right", footer=f"{total.requests:,}")
    table.add_column("errors", justify="right", footer=f"{total.errors:,}")
    table.add_column("prompt tok", justify="right", footer=f"{total.prompt_tokens:,}")
    table.add_column("completion tok", justify="right", footer=f"{total.completion_tokens:,}")
    table.add_column("cost USD", justify="right", footer=format_usd(report_mod.known_cost(total)))
    table.add_column("unpriced", justify="right", footer=f"{total.unpriced:,}")
    # The response cache's columns, when it answered or was asked in this range.
    cached = bool(total.cache_hits + total.cache_misses or total.saved_nusd)
    if cached:
        table.add_column("cache hits", justify="right", footer=_hits(total))
        table.add_column("saved USD", justify="right", footer=format_usd(total.saved_nusd))
    for r in rep.rows:
        extra = [_hits(r), format_usd(r.saved_nusd)] if cached else []
        table.add_row(
            r.name,
            f"{r.requests:,}",
            f"{r.errors:,}",
            f"{r.prompt_tokens:,}",
            f"{r.completion_tokens:,}",
            format_usd(report_mod.known_cost(r)),
            f"[yellow]{r.unpriced:,}[/]" if r.unpriced else "0",
            *extra,
        )
    console.print(table)
    if total.unpriced:
        console.print(
            f"[yellow]{total.unpriced} request(s) used a model with no known price; "
            'their tokens are counted but their cost is not. Add a \\[prices."MODEL"] '
            "entry to config.toml.[/]"
        )
