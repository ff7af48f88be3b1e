"""`aigw init`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from aigw import config as config_mod
from aigw import paths
from aigw.cli.common import console
from aigw.errors import AigwError


def init(
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing config.toml with the defaults.")
    ] = False,
) -> None:
    """Write a commented default config.toml and create the state database."""
    p = paths.resolve()
    if p.config_file.exists() and not force:
        raise AigwError(f"{p.config_file} already exists; use --force to overwrite it")
    cfg = config_mod.default_config()
    config_mod.save(cfg, p.config_file)

    from aigw.store.open import open_store

    async def create_db() -> None:
        store = await open_store(cfg, p.state_file)
        await store.close()

    asyncio.run(create_db())
    console.print(f"[green]✓[/] wrote {p.config_file}")
    console.print(f"[green]✓[/] state database {p.state_file}")
    console.print(
        "\nNext:\n"
        "  aigw providers add openai --type openai\n"
        "  aigw providers set-key openai\n"
        "  aigw keys create --team TEAM\n"
        "  aigw serve"
    )
