"""`aigw models ...`: the routes clients can ask for, their targets and their health."""

from __future__ import annotations

import json as jsonlib
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aigw.cli.common import console, load_config, print_json
from aigw.config import Config
from aigw.pricing import PriceBook, format_usd

app = typer.Typer(help="Model routes: [models.NAME] and their targets.", no_args_is_help=True)


def _readyz(cfg: Config, url: str | None) -> dict[str, Any] | None:
    """The running server's /readyz (breakers, key pools), None if none answers."""
    host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    base = url or f"http://{host}:{cfg.server.port}"
    try:
        with urllib.request.urlopen(base.rstrip("/") + "/readyz", timeout=2) as resp:
            body = jsonlib.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503 "not ready" still reports breakers
        try:
            body = jsonlib.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else {}


def _part(body: dict[str, Any] | None, name: str) -> dict[str, Any]:
    part = (body or {}).get(name)
    return part if isinstance(part, dict) else {}


def _pool(providers: dict[str, Any], name: str) -> dict[str, int] | None:
    """How many of a provider's pooled keys are available now (None: one key or unknown)."""
    entry = providers.get(name)
    keys = entry.get("keys") if isinstance(entry, dict) else None
    if not isinstance(keys, list):
        return None
    up = sum(1 for k in keys if isinstance(k, dict) and k.get("available"))
    return {"available": up, "total": len(keys)}


def _usd_per_mtok(micro: int) -> str:
    return format_usd(micro * 1000, 2)  # micro-USD per M -> nano-USD, as $ per M tokens


@app.command("list")
def list_(
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="The running gateway to ask for live health (default: [server])."
        ),
    ] = None,
) -> None:
    """List every route, its strategy and targets, their prices, region and live health."""
    cfg = load_config()
    prices = PriceBook(cfg.prices)
    live = _readyz(cfg, url)
    breakers, pools = _part(live, "breakers"), _part(live, "providers")
    routes: list[dict[str, Any]] = []
    for name, m in sorted(cfg.models.items()):
        targets: list[dict[str, Any]] = []
        for t in m.targets:
            target_id = f"{t.provider}/{t.model}"
            price = prices.lookup(t.provider, t.model)
            provider = cfg.providers.get(t.provider)
            breaker = breakers.get(target_id)
            targets.append(
                {
                    "provider": t.provider,
                    "model": t.model,
                    "weight": t.weight,
                    "region": provider.region if provider else None,
                    "input_usd_per_mtok": _usd_per_mtok(price.base.input) if price else None,
                    "output_usd_per_mtok": _usd_per_mtok(price.base.output) if price else None,
                    # None: no server answered; "unused": the server has not called it yet.
                    "health": None if live is None else (breaker or {"state": "unused"}),
                    # A key pool's keys available now, e.g. 2 of 3 (one benched for a 401).
                    "keys": _pool(pools, t.provider),
                }
            )
        routes.append(
            {
                "name": name,
                "strategy": m.strategy,
                "allow_pricier_fallback": m.allow_pricier_fallback,
                "max_attempts": m.max_attempts or cfg.routing.max_attempts,
                "targets": targets,
            }
        )
    if json:
        print_json({"server": live is not None, "routes": routes})
        return
    if not routes:
        console.print('no routes yet: add [models.NAME] provider = "P", model = "M" to the config')
        return
    table = Table("route", "strategy", "target", "weight", "region", "$/M in", "$/M out", "health")
    for r in routes:
        first = True
        for t in r["targets"]:
            health = t["health"]
            state = "no server" if health is None else str(health.get("state"))
            style = {"open": "red", "half_open": "yellow", "closed": "green"}.get(state, "")
            if t["keys"] is not None:
                state += f", keys {t['keys']['available']}/{t['keys']['total']}"
            table.add_row(
                escape(r["name"]) if first else "",
                r["strategy"] if first else "",
                escape(f"{t['provider']}/{t['model']}"),
                f"{t['weight']:g}",
                escape(str(t["region"] or "-")),
                t["input_usd_per_mtok"] or "unpriced",
                t["output_usd_per_mtok"] or "unpriced",
                f"[{style}]{state}[/]" if style else state,
            )
            first = False
    console.print(table)
