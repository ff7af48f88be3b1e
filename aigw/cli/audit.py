"""`aigw audit ...`: check the audit trail's hash chain, export it, show one call."""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape

from aigw.cli.common import console, err_console, print_json, with_store
from aigw.cli.common import parse_since as _parse_since
from aigw.errors import AigwError

if TYPE_CHECKING:
    from aigw.audit import Verdict
    from aigw.model import AuditBody, AuditEvent
    from aigw.store.base import Store

app = typer.Typer(
    help="The tamper-evident audit trail: every proxied call and admin change, each event "
    "hash-chained to the one before (SHA-256, or HMAC-SHA-256 with a key from "
    "AIGW_AUDIT_KEY or the keyring). Verify the chain, export it, show one call.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
FORMATS = ("jsonl", "csv")


@app.command("verify")
def verify(json: JsonOpt = False) -> None:
    """Check every event's hash and link; name the first one that does not verify (exit 1)."""
    from aigw.audit import ChainCheck, load_key
    from aigw.store.sqlite import SQLiteStore

    key = load_key()

    async def check_chain(store: Store, *, upto_head: bool) -> Verdict:
        head = await store.audit.head()
        check = ChainCheck(key)
        upto = head[0] if upto_head and head is not None else None
        async for event in store.audit.chain(upto=upto):
            if not check.feed(event):
                break
        return check.result(head)

    async def run(store: Store) -> Verdict:
        if isinstance(store, SQLiteStore):
            # One snapshot: a running server keeps appending (events and head together).
            async with store.db.snapshot():
                return await check_chain(store, upto_head=False)
        # PostgreSQL: the head first, then the events up to it (head and events commit
        # together, so later appends are simply not looked at).
        return await check_chain(store, upto_head=True)

    verdict = with_store(run)
    mode = "HMAC-SHA-256" if key is not None else "SHA-256 (no audit key)"
    if json:
        print_json(
            {
                "ok": verdict.ok,
                "checked": verdict.checked,
                "hmac_sealed": verdict.keyed,
                "head": {"seq": verdict.head_seq, "hash": verdict.head_hash},
                "first_bad_seq": verdict.bad_seq,
                "problem": verdict.problem,
                "key": key is not None,
            }
        )
    elif verdict.ok:
        console.print(
            f"[green]✓[/] {verdict.checked} events verified ({verdict.keyed} HMAC-sealed; "
            f"checked with {mode})"
        )
        console.print(f"  head: event {verdict.head_seq} {verdict.head_hash}")
        console.print("  note this head elsewhere: it also proves no event was cut off the end")
        if key is not None and verdict.checked and not verdict.keyed:
            console.print(
                "[yellow]  an audit key is set but no event is HMAC-sealed: events are sealed "
                "from the time `aigw serve` and the CLI have the key[/]"
            )
    else:
        err_console.print(f"[red]✗[/] {escape(verdict.problem or 'the chain does not verify')}")
        err_console.print(f"  {verdict.checked} events verified before it; checked with {mode}")
    if not verdict.ok:
        raise typer.Exit(1)


def _csv_line(values: list[Any]) -> str:
    """One CSV line: JSON fields as JSON text, None as empty."""
    buf = io.StringIO()
    csv.writer(buf).writerow(
        [
            orjson.dumps(v).decode() if isinstance(v, dict | list) else ("" if v is None else v)
            for v in values
        ]
    )
    return buf.getvalue()


@app.command("export")
def export(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events since: a duration back (30d) or a date."),
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", help="jsonl (one JSON object per line) or csv.")
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """Export audit events (with their hashes) as JSON Lines or CSV, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from aigw.audit import COLUMNS, event_dict

    if format_ not in FORMATS:
        raise AigwError(f"--format must be one of {', '.join(FORMATS)} (got {format_!r})")
    start = None if since is None else _parse_since(since, time.time())
    try:
        out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as exc:
        raise AigwError(f"{output}: cannot write: {exc.strerror}") from exc

    async def run(store: Store) -> int:
        total = await store.audit.count(since=start)
        written = 0
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=total < 1000 and output is None,  # short exports to a pipe: no noise
        ) as progress:
            task = progress.add_task("exporting audit events", total=total)
            if format_ == "csv":
                out.write(_csv_line(["time", *COLUMNS]))
            async for page in store.audit.pages(since=start):
                for event in page:
                    row = event_dict(event)
                    if format_ == "jsonl":
                        out.write(orjson.dumps(row).decode() + "\n")
                    else:
                        out.write(_csv_line(list(row.values())))
                written += len(page)
                progress.update(task, advance=len(page))
        return written

    try:
        written = with_store(run)
    finally:
        if output is not None:
            out.close()
    if output is not None:
        console.print(f"[green]✓[/] exported {written} events to {output}")


@app.command("show")
def show(
    request_id: Annotated[str, typer.Argument(help="The call's request id (x-request-id).")],
    json: JsonOpt = False,
) -> None:
    """One call's audit events and, if its team logs bodies, its prompt and answer."""
    from aigw.audit import event_dict

    async def run(store: Store) -> tuple[list[AuditEvent], list[AuditBody]]:
        events = await store.audit.by_request_id(request_id)
        return events, await store.audit.bodies_of(request_id, time.time())

    events, bodies = with_store(run)
    if not events:
        raise AigwError(f"no audit event for request {request_id!r}")
    if json:
        print_json(
            {
                "events": [event_dict(e) for e in events],
                "bodies": [
                    {"request": b.request, "answer": b.answer, "expires_at": b.expires_at}
                    for b in bodies
                ],
            }
        )
        return
    for e in events:
        for name, value in event_dict(e).items():
            if value is not None:
                console.print(f"[bold]{name:>17}[/] {escape(str(value))}")
        console.print()
    for b in bodies:
        console.print("[bold]request as sent upstream[/]")
        console.print(escape(b.request or "-"), soft_wrap=True)
        console.print("[bold]answer as the provider sent it[/]")
        console.print(escape(b.answer or "-"), soft_wrap=True)
    if not bodies:
        console.print("[dim]no bodies kept (its team does not log bodies, or they expired)[/]")


@app.command("set-key")
def set_key(
    stdin: Annotated[
        bool,
        typer.Option("--stdin", help="Read the key from standard input instead of a prompt."),
    ] = False,
    generate: Annotated[
        bool,
        typer.Option("--generate", help="Make a random key, store it and print it once."),
    ] = False,
) -> None:
    """Store the audit HMAC key in the OS keyring (AIGW_AUDIT_KEY takes precedence).

    With a key, events are sealed with HMAC-SHA-256: someone who can write the state
    file but cannot read the key cannot forge or re-chain events. Give every host
    that runs `aigw serve` on this state file the same key, and keep a copy: without
    it, `aigw audit verify` cannot check the sealed events.
    """
    import secrets as random_secrets

    from aigw.audit import KEY_ENV, store_key

    if generate:
        value = random_secrets.token_urlsafe(32)
    elif stdin:
        value = sys.stdin.readline().strip()
    else:
        value = typer.prompt("Audit HMAC key", hide_input=True, confirmation_prompt=True)
    value = value.strip()
    if len(value) < 16:
        raise AigwError("an audit key needs at least 16 characters (try --generate)")
    store_key(value)
    from aigw.cli.common import record_admin

    record_admin("audit.set-key", "audit", after={"where": "keyring"})
    console.print("[green]✓[/] stored the audit key in the OS keyring")
    if generate:
        console.print(f"  key (shown once, keep a copy): {value}")
    console.print("  restart a running `aigw serve` so it seals new events with the key")
    import os

    if os.environ.get(KEY_ENV, "").strip():
        console.print(f"  note: {KEY_ENV} is set and takes precedence over the keyring")
