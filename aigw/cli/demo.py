"""`aigw demo`: the whole job, offline, in one command."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from aigw import report as report_mod
from aigw.cli.common import console
from aigw.cli.report import print_table
from aigw.cli.serve import run_loop
from aigw.config import Config, ModelConfig, PriceConfig, ProviderConfig
from aigw.model import Limits

DEMO_MODEL = "demo-chat"


def demo_config() -> Config:
    """A mock provider, an alias for it, and a price for the alias."""
    cfg = Config()
    cfg.providers["mock"] = ProviderConfig(name="mock", type="mock", base_url="")
    cfg.models[DEMO_MODEL] = ModelConfig(DEMO_MODEL, "mock", "echo")
    # The mock's "echo" model is priced as a small commercial model would be.
    cfg.prices["mock/echo"] = PriceConfig(input=0.15, output=0.60, cached_input=0.075)
    return cfg


async def _demo(home: Path) -> None:
    import openai

    from aigw.app import create_app
    from aigw.gateway import GATEWAY
    from aigw.server import running

    app = create_app(demo_config(), home / "state.db")
    async with running(app) as server:
        url = server.url + "/v1"
        gw = app[GATEWAY]
        console.rule("[bold]aigw demo")
        console.print(f"gateway on {url} with the built-in mock provider (no keys, no network)")
        console.print(f"state in {home}\n")

        web_key, web_rec = await gw.store.keys.create(team="frontend", app="web")
        # The batch team may send 5 requests a minute: its burst cannot drain the org.
        await gw.store.teams.create("data", Limits(rpm=5))
        batch_key, _ = await gw.store.keys.create(team="data", app="nightly-batch")
        console.print(
            f"[bold]1.[/] created key {web_rec.id} for team frontend: "
            f"{web_key[:12]}… (shown once, stored as a hash)"
        )

        console.print("\n[bold]2.[/] the official openai SDK, pointed at the gateway:")
        async with openai.AsyncOpenAI(base_url=url, api_key=web_key, max_retries=0) as client:
            for question in ("What is an AI gateway?", "Why keep provider keys out of apps?"):
                raw = await client.chat.completions.with_raw_response.create(
                    model=DEMO_MODEL,
                    messages=[{"role": "user", "content": question}],
                )
                answer = raw.parse()
                console.print(f"   [cyan]{question}[/] -> {answer.choices[0].message.content!r}")
                console.print(
                    f"     cost ${raw.headers['x-aigw-cost-usd']}, "
                    f"request id {raw.headers['x-request-id']}"
                )
            console.print("   streamed: ", end="")
            stream = await client.chat.completions.create(
                model=DEMO_MODEL,
                stream=True,
                messages=[{"role": "user", "content": "Stream this answer word by word"}],
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    console.print(chunk.choices[0].delta.content, end="")
                    await asyncio.sleep(0.03)
            console.print()
            try:
                await client.chat.completions.create(
                    model="mock/error-429", messages=[{"role": "user", "content": "hi"}]
                )
            except openai.RateLimitError as exc:
                console.print(
                    f"   an upstream 429 reaches the app as openai.RateLimitError: {exc.message!r}"
                )
            console.print("   an unpriced model is counted, and flagged, never billed as $0:")
            await client.chat.completions.create(
                model="mock/unlisted-model",
                messages=[{"role": "user", "content": "no price for me"}],
            )
        async with openai.AsyncOpenAI(base_url=url, api_key=batch_key, max_retries=0) as batch:
            results = await asyncio.gather(
                *[
                    batch.chat.completions.create(
                        model=DEMO_MODEL, messages=[{"role": "user", "content": f"row {i}"}]
                    )
                    for i in range(8)
                ],
                return_exceptions=True,
            )
        limited = [r for r in results if isinstance(r, openai.RateLimitError)]
        console.print(
            f"   team data (limit: 5 requests/minute) fired 8 concurrent requests: "
            f"{len(results) - len(limited)} answered, {len(limited)} got 429 "
            f"rate_limit_exceeded (Retry-After {limited[0].response.headers['retry-after']} s)"
            if limited
            else "   team data's batch job sent 8 concurrent requests"
        )

        console.print("\n[bold]3.[/] what `aigw report` shows:")
        for by in ("team", "model"):
            rep = await report_mod.build(gw.store.reports, by=by, since=time.time() - 3600)
            print_table(rep)
        console.print(
            "\nNext: `aigw init`, `aigw providers add`, `aigw keys create`, "
            "`aigw serve` (see README)."
        )


def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the demo's state directory instead of deleting it.")
    ] = False,
) -> None:
    """Run the gateway on a built-in mock provider, send requests with the openai SDK, report."""
    # The demo narrates what happens; the server's own warnings would only interleave.
    logging.getLogger("aigw").setLevel(logging.ERROR)
    if keep:
        home = Path(tempfile.mkdtemp(prefix="aigw-demo-"))
        run_loop(_demo(home))
        console.print(f"kept {home}")
        return
    with tempfile.TemporaryDirectory(prefix="aigw-demo-") as tmp:
        run_loop(_demo(Path(tmp)))
