"""`aigw providers ...`: upstream APIs and their keys."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aigw import secrets
from aigw.cli.common import console, load_config, print_json, record_admin, save_config
from aigw.config import DEFAULT_BASE_URLS, PROVIDER_TYPES, Config, ProviderConfig
from aigw.errors import AigwError
from aigw.model import region_problem
from aigw.pricing import Shipped, load_shipped

if TYPE_CHECKING:
    from aigw.providers.probe import ProbeResult

KEY_HELP = (
    "aigw looks for a provider's key in this order: the environment variable "
    "AIGW_<NAME>_API_KEY (NAME upper-cased, non-alphanumerics as _), then the systemd "
    "credential $CREDENTIALS_DIRECTORY/aigw-<name>, then the OS keyring (service 'aigw'). "
    "Any of them may hold several keys separated by commas (a key pool): calls are "
    "spread over them, and a key answered 401/403/429 is rested while the others serve."
)

app = typer.Typer(
    help=f"Configure upstream providers (OpenAI, Anthropic, Gemini, compatible servers, mock). "
    f"{KEY_HELP}",
    no_args_is_help=True,
)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise AigwError(f"{option} takes NAME=VALUE (got {item!r})")
        out[name] = value
    return out


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Provider name; clients use it as NAME/MODEL.")],
    type_: Annotated[str, typer.Option("--type", help=f"API family: {', '.join(PROVIDER_TYPES)}.")],
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="API base URL (default: the provider's real API)."),
    ] = None,
    auth_header: Annotated[
        str | None,
        typer.Option(
            "--auth-header",
            help="Send the key in this header instead of the "
            "type's default (Azure OpenAI: api-key).",
        ),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            help="NAME=VALUE query parameter for every call (repeatable; Azure: api-version=...).",
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="NAME=VALUE header for every call (repeatable)."),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="Where the provider processes data (e.g. eu, us, eu-west): teams and "
            "keys with --regions reach only providers in one of theirs.",
        ),
    ] = None,
) -> None:
    """Add a provider to config.toml."""
    if type_ not in PROVIDER_TYPES:
        raise AigwError(f"--type must be one of {', '.join(PROVIDER_TYPES)} (got {type_!r})")
    if not name or "/" in name:
        raise AigwError(f"a provider name must be non-empty and without '/' (got {name!r})")
    if region is not None and region_problem(region) is not None:
        raise AigwError(f"--region: {region_problem(region)}")
    cfg = load_config()
    if name in cfg.providers:
        raise AigwError(f"provider {name!r} already exists; remove it first to change it")
    url = (base_url or DEFAULT_BASE_URLS[type_]).rstrip("/")
    if type_ != "mock" and not url.startswith(("http://", "https://")):
        raise AigwError(f"--base-url must start with http:// or https:// (got {url!r})")
    cfg.providers[name] = ProviderConfig(
        name=name,
        type=type_,
        base_url=url,
        headers=_pairs(header or [], "--header"),
        query=_pairs(query or [], "--query"),
        auth_header=auth_header,
        region=None if region is None else region.lower(),
    )
    save_config(cfg)
    console.print(f"[green]✓[/] added provider [bold]{name}[/] ({type_}, {url or 'in-process'})")
    if type_ != "mock" and secrets.lookup(name) is None:
        console.print(
            f"  next: aigw providers set-key {name}   (or set {secrets.env_var_name(name)})"
        )
    console.print("  a running `aigw serve` picks this up when restarted")


@app.command("list")
def list_(
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List providers and where each one's key comes from (never the key itself)."""
    cfg = load_config()
    rows = []
    for p in cfg.providers.values():
        found = None if p.type == "mock" else secrets.lookup_keys(p.name)
        source = "not needed" if p.type == "mock" else (found[1] if found else "missing")
        if found is not None and len(found[0]) > 1:
            source += f" ({len(found[0])} keys)"
        rows.append(
            {
                "name": p.name,
                "type": p.type,
                "base_url": p.base_url or None,
                "region": p.region,
                "key": source,
                "keys": len(found[0]) if found else 0,
            }
        )
    if json:
        print_json(rows)
        return
    if not rows:
        console.print("no providers yet: aigw providers add NAME --type openai")
        return
    table = Table("name", "type", "base URL", "region", "key")
    for r in rows:
        key = r["key"]
        style = "red" if key == "missing" else ""
        table.add_row(
            str(r["name"]),
            str(r["type"]),
            str(r["base_url"] or "in-process"),
            str(r["region"] or "-"),
            f"[{style}]{key}[/]" if style else str(key),
        )
    console.print(table)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The provider to remove.")],
    keep_key: Annotated[
        bool, typer.Option("--keep-key", help="Leave its key in the OS keyring.")
    ] = False,
) -> None:
    """Remove a provider from config.toml (and its key from the keyring)."""
    cfg = load_config()
    if name not in cfg.providers:
        raise AigwError(f"no provider named {name!r} (see `aigw providers list`)")
    users = [m.name for m in cfg.models.values() if m.provider == name]
    if users:
        raise AigwError(
            f"model aliases still use {name!r}: {', '.join(users)}; "
            "remove them from config.toml first"
        )
    del cfg.providers[name]
    save_config(cfg)
    removed = False if keep_key else secrets.delete(name)
    if removed:
        record_admin("providers.remove-key", name, before={"where": "keyring"})
    console.print(
        f"[green]✓[/] removed provider {name}" + (" and its stored key" if removed else "")
    )


@app.command("set-key", help=f"Store a provider's API key in the OS keyring. {KEY_HELP}")
def set_key(
    name: Annotated[str, typer.Argument(help="The provider the key belongs to.")],
    stdin: Annotated[
        bool,
        typer.Option(
            "--stdin", help="Read the key from standard input instead of a hidden prompt."
        ),
    ] = False,
    add: Annotated[
        bool,
        typer.Option(
            "--add",
            help="Add the key to the ones already stored (a key pool) instead of replacing them.",
        ),
    ] = False,
) -> None:
    cfg = load_config()
    if name not in cfg.providers:
        raise AigwError(
            f"no provider named {name!r}; add it first with `aigw providers add {name} --type ...`"
        )
    secrets.check_backend(name)  # before asking for the secret, not after
    if stdin:
        key = sys.stdin.readline().strip()
    else:
        key = typer.prompt(f"API key for {name}", hide_input=True).strip()
    if add:
        count = secrets.add(name, key)
        stored = f"added the key to {name}'s pool in the OS keyring ({count} keys)"
    else:
        secrets.store(name, key)
        count = 1
        stored = f"stored the key for {name} in the OS keyring"
    # Never the key itself: what was done and how many keys the keyring now holds.
    record_admin("providers.set-key", name, after={"where": "keyring", "added": add, "keys": count})
    console.print(f"[green]✓[/] {stored} (restart a running `aigw serve` to use it)")
    env = secrets.env_var_name(name)
    if os.environ.get(env, "").strip():
        console.print(f"  note: {env} is set and takes precedence over the keyring")


@app.command("test")
def test(
    name: Annotated[str, typer.Argument(help="The provider to test.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Upstream model to ask (default: the cheapest chat model the price "
            "table lists for the provider's type).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each answer.")
    ] = 30.0,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Send one tiny chat request with each of the provider's keys; print the latency or
    the provider's error (keys redacted). Exits 1 when any key failed."""
    cfg = load_config()
    if name not in cfg.providers:
        raise AigwError(f"no provider named {name!r} (see `aigw providers list`)")
    shipped = load_shipped()
    results, used = asyncio.run(_probe(cfg, name, model, shipped, timeout))
    if json:
        print_json(
            {"provider": name, "model": used, "ok": all(r.ok for r in results)}
            | {"results": [r.as_dict() for r in results]}
        )
    else:
        for r in results:
            who = "" if r.key is None else f" key {r.key} of {len(results)}"
            if r.ok:
                console.print(f"[green]✓[/] {name}{who}: {used} answered in {r.latency_ms} ms")
            else:
                status = f" ({r.status})" if r.status else ""
                error = escape(r.error or "")
                console.print(f"[red]✗[/] {name}{who}{status} after {r.latency_ms} ms: {error}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


async def _probe(
    cfg: Config, name: str, model: str | None, shipped: Shipped, wait: float
) -> tuple[list[ProbeResult], str]:
    # Imported here: the CLI starts without the server stack (aiohttp) otherwise.
    from aigw.providers import build
    from aigw.providers.http import new_session
    from aigw.providers.probe import default_model, probe

    session = new_session(min(wait, cfg.upstream.connect_timeout))
    try:
        catalog: dict[str, list[str]] = {}
        provider = build(cfg, session, catalog)[name]
        used = model or default_model(provider, shipped)
        if used is None:
            raise AigwError(f"the price table lists no model for {provider.type}: pass --model")
        return await probe(provider, used, wait), used
    finally:
        await session.close()
