"""The audit trail: an event per proxied call and admin change, hash-chained, verified,
bodies opt-in and pruned, `aigw logs` and `aigw audit export`."""

from __future__ import annotations

import asyncio
import csv
import getpass
import io
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

import aigw.app as app_mod
from aigw import paths
from aigw.app import create_app
from aigw.audit import GENESIS, HASHED, KEYED, PLAIN, canonical, digest
from aigw.cli import app as cli
from aigw.config import Config, ModelConfig
from aigw.gateway import GATEWAY, Gateway
from aigw.model import AuditEvent, Limits
from aigw.pipeline import PIPELINES
from aigw.pipeline.context import Context
from aigw.server import Server
from aigw.store.base import Store
from aigw.store.sqlite.audit_codec import ALGS
from tests import statedb
from tests.conftest import listening, provider_config
from tests.fakes.base import Fail, Reply
from tests.fakes.openai import FakeOpenAI
from tests.memkeyring import MemoryKeyring

HI = [{"role": "user", "content": "hi there"}]


def aigw(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, input=input)


def ok(*args: str, input: str | None = None) -> str:
    result = aigw(*args, input=input)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return str(result.output)


async def run_cli(*args: str) -> Any:
    """The CLI against a server running in this test's loop: in a thread."""
    return await asyncio.to_thread(aigw, *args)


async def aok(*args: str) -> str:
    return await asyncio.to_thread(ok, *args)


def state() -> Path:
    return paths.resolve().state_file


def events(**where: Any) -> list[dict[str, Any]]:
    """Audit rows straight from the store (SQLite's ``audit`` view, PostgreSQL's
    table), oldest first."""
    sql = "SELECT * FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
    return statedb.sql(sql + " ORDER BY seq", list(where.values()))


def audit_table() -> str:
    """Where the events are stored (SQLite stores them compact, under a view)."""
    return "audit" if statedb.on_postgres() else "audit_events"


def ledger_ids() -> set[str]:
    return {r["request_id"] for r in statedb.sql("SELECT request_id FROM ledger")}


class Running:
    def __init__(self, server: Server) -> None:
        self.server = server

    @property
    def gw(self) -> Gateway:
        return self.server.app[GATEWAY]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture
async def gw(fake_openai: FakeOpenAI, store_url: str) -> AsyncIterator[Running]:
    """A gateway on the CLI's own store (so `aigw logs` reads what it wrote)."""
    await asyncio.to_thread(statedb.init_home, store_url)
    cfg = statedb.use_store(Config(), store_url)
    cfg.routing.max_attempts = 1
    cfg.providers["openai"] = provider_config("openai", "openai", fake_openai.base_url + "/v1")
    cfg.models["fast"] = ModelConfig("fast", "openai", "gpt-4o-mini")
    server = await listening(create_app(cfg, state()))
    try:
        yield Running(server)
    finally:
        await server.close()


async def chat(client: openai.AsyncOpenAI, *, stream: bool = False, **kw: Any) -> str:
    """One call; returns its request id (raises the SDK's error on a refusal)."""
    raw = await client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "fast"), messages=kw.pop("messages", HI), stream=stream, **kw
    )
    parsed = raw.parse()
    if isinstance(parsed, openai.AsyncStream):
        async for _ in parsed:
            pass
    return str(raw.headers["x-request-id"])


def request_id_of(exc: openai.APIStatusError) -> str:
    return str(exc.response.headers["x-request-id"])


# -- proxied calls ---------------------------------------------------------------------


async def test_every_call_has_its_event_allowed_refused_failed(
    gw: Running, fake_openai: FakeOpenAI
) -> None:
    key, rec = await gw.gw.store.keys.create(team="team-a", app="web")
    slow_key, slow = await gw.gw.store.keys.create(team="team-b", limits=Limits(rpm=1))

    # The scrub step is another issue's: a step that counts stands in for it here.
    async def counted(ctx: Context) -> None:
        ctx.scrub_counts = {"email": 2, "card": 1}

    proxy = gw.server.app[PIPELINES].proxy
    proxy.steps = (*proxy.steps[:-1], counted, proxy.steps[-1])

    async with gw.client(key) as client:
        plain = await chat(client)
        streamed = await chat(client, stream=True)
        fake_openai.then(Fail(500, "upstream exploded"))
        with pytest.raises(openai.APIStatusError) as failed:
            await chat(client)
        with pytest.raises(openai.NotFoundError) as unknown_model:
            await chat(client, model="no-such-model")
    async with gw.client("gw-not-a-key") as stranger:
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            await chat(stranger)
    async with gw.client(slow_key) as client:
        await chat(client)
        with pytest.raises(openai.RateLimitError) as limited:
            await chat(client)

    by_id = {e["request_id"]: e for e in events(kind="proxy")}
    ok_event = by_id[plain]
    assert ok_event["status"] == 200
    assert (ok_event["key_id"], ok_event["team"], ok_event["app"]) == (rec.id, "team-a", "web")
    assert (ok_event["model"], ok_event["provider"], ok_event["upstream_model"]) == (
        "fast",
        "openai",
        "gpt-4o-mini",
    )
    assert (ok_event["prompt_tokens"], ok_event["completion_tokens"]) == (11, 7)
    assert ok_event["cost_nusd"] == 11 * 150 + 7 * 600
    assert json.loads(ok_event["scrub"]) == {"card": 1, "email": 2}
    assert by_id[streamed]["status"] == 200 and by_id[streamed]["completion_tokens"] == 7

    fail_event = by_id[request_id_of(failed.value)]
    assert fail_event["status"] == failed.value.status_code >= 500
    assert fail_event["error"] and fail_event["key_id"] == rec.id

    assert by_id[request_id_of(unknown_model.value)]["status"] == 404
    refused = by_id[request_id_of(unauthorized.value)]
    assert refused["status"] == 401 and refused["key_id"] is None and refused["team"] is None
    limited_event = by_id[request_id_of(limited.value)]
    assert (limited_event["status"], limited_event["key_id"]) == (429, slow.id)

    # The start is an event too: the configuration the server loaded.
    start = next(e for e in events(kind="admin") if e["action"] == "serve.start")
    assert json.loads(start["after"])["providers"] == ["openai"]
    # Every ledger row has its event, and the chain verifies.
    assert ledger_ids() <= set(by_id)
    result = await run_cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "events verified" in result.output


async def test_audit_events_share_the_ledger_commit(gw: Running) -> None:
    """Many concurrent calls: as many commits as the ledger alone would make."""
    key, _ = await gw.gw.store.keys.create(team="team-a")
    async with gw.client(key) as client:
        ids = await asyncio.gather(*[chat(client, stream=i % 2 == 0) for i in range(60)])
    writer = gw.gw.writer
    assert writer.rows == 60 and writer.commits < 60
    assert set(ids) <= {e["request_id"] for e in events(kind="proxy")}


# -- admin changes ---------------------------------------------------------------------


def test_admin_changes_are_events_with_before_after_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    statedb.init_home(store_url)
    ok("teams", "create", "ops", "--rpm", "5")
    ok("teams", "update", "ops", "--rpm", "10", "--log-bodies", "--retention", "7d")
    created = json.loads(ok("keys", "create", "--team", "ops", "--json"))
    secret, key_id = created["key"], created["id"]
    ok("keys", "update", key_id, "--rpm", "3")
    ok("keys", "rotate", key_id)
    ok("keys", "revoke", key_id)
    ok("providers", "add", "acme", "--type", "openai", "--base-url", "http://127.0.0.1:9")
    ok("providers", "set-key", "acme", "--stdin", input="sk-acme-very-secret\n")
    ok("teams", "remove", "ops")

    admin = events(kind="admin")
    actions = [(e["action"], e["target"]) for e in admin]
    for expected in [
        ("teams.create", "ops"),
        ("teams.update", "ops"),
        ("keys.create", key_id),
        ("keys.update", key_id),
        ("keys.rotate", key_id),
        ("keys.revoke", key_id),
        ("providers.set-key", "acme"),
        ("teams.delete", "ops"),
    ]:
        assert expected in actions, actions
    assert any(a == "config.change" for a, _ in actions)
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    assert {e["actor"] for e in admin} == {me}

    update = next(e for e in admin if e["action"] == "teams.update")
    before, after = json.loads(update["before"]), json.loads(update["after"])
    assert before["limits"]["rpm"] == 5 and after["limits"]["rpm"] == 10
    assert before["body_retention"] is None and after["body_retention"] == 7 * 86400
    revoke = next(e for e in admin if e["action"] == "keys.revoke")
    assert json.loads(revoke["before"])["revoked_at"] is None
    assert json.loads(revoke["after"])["revoked_at"] is not None
    delete = next(e for e in admin if e["action"] == "teams.delete")
    assert json.loads(delete["before"])["name"] == "ops" and delete["after"] is None
    config = next(e for e in admin if e["action"] == "config.change")
    assert "providers.acme" in json.loads(config["after"])

    text = json.dumps(admin)
    assert secret not in text and "sk-acme-very-secret" not in text
    assert '"hash"' not in text.replace('"hash": ', "")  # no key hash in before/after
    for e in admin:
        for field in ("before", "after"):
            assert e[field] is None or "hash" not in json.loads(e[field])
    assert aigw("audit", "verify").exit_code == 0


# -- the chain -------------------------------------------------------------------------


def _some_events(n: int = 5, prefix: str = "team") -> None:
    async def run(store: Store) -> None:
        for i in range(n):
            await store.teams.create(f"{prefix}-{i}")

    statedb.with_home_store(run)


def _sql(*statements: str) -> None:
    """Statements on the audit table (``{audit}`` names it on this backend)."""
    statedb.execute(*(s.format(audit=audit_table()) for s in statements))


def _verify_fails() -> str:
    result = aigw("audit", "verify")
    assert result.exit_code == 1, result.output
    return " ".join(result.output.split())


def test_verify_catches_an_edited_a_deleted_and_a_reordered_event(store_url: str) -> None:
    statedb.init_home(store_url)
    _some_events(5)
    assert "5 events verified" in ok("audit", "verify")
    _sql(
        "CREATE TABLE good_events AS SELECT * FROM {audit}",
        "CREATE TABLE good_head AS SELECT * FROM audit_head",
    )

    def restore() -> None:
        _sql(
            "DELETE FROM {audit}",
            "INSERT INTO {audit} SELECT * FROM good_events",
            "DELETE FROM audit_head",
            "INSERT INTO audit_head SELECT * FROM good_head",
        )
        assert aigw("audit", "verify").exit_code == 0

    _sql("UPDATE {audit} SET target = 'team-x' WHERE seq = 3")
    assert "event 3 (teams.create team-x" in _verify_fails()
    assert "edited" in _verify_fails()
    restore()

    _sql("DELETE FROM {audit} WHERE seq = 3")
    out = _verify_fails()
    assert "event 3 is missing" in out and "deleted" in out
    restore()

    # Swap events 2 and 3 (their contents, keeping the seq numbers in order).
    _sql(
        "UPDATE {audit} SET seq = -2 WHERE seq = 2",
        "UPDATE {audit} SET seq = 2 WHERE seq = 3",
        "UPDATE {audit} SET seq = 3 WHERE seq = -2",
    )
    assert "event 2 " in _verify_fails()
    restore()

    # The last event deleted: the chain head still names it.
    _sql("DELETE FROM {audit} WHERE seq = 5")
    assert "events 5..5 are missing" in _verify_fails()
    restore()

    # Edited and re-hashed by someone without a key: plain mode cannot tell (documented);
    # the JSON output says which check ran.
    report = json.loads(ok("audit", "verify", "--json"))
    assert report["ok"] and report["checked"] == 5 and report["key"] is False


def test_hmac_mode_a_forger_without_the_key_is_caught(
    monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    statedb.init_home(store_url)
    monkeypatch.setenv("AIGW_AUDIT_KEY", "a-long-secret-audit-key-1234")
    _some_events(3)
    report = json.loads(ok("audit", "verify", "--json"))
    assert report["ok"] and report["hmac_sealed"] == 3

    # The forger edits event 2 and re-chains 2..3 and the head, but without the key
    # can only guess one.
    _rechain(2, KEYED, b"guessed-key-not-the-real-one")
    assert "event 2 (teams.create forged" in _verify_fails()

    # Without the key, verify says it cannot check the sealed events.
    monkeypatch.delenv("AIGW_AUDIT_KEY")
    assert "no audit key is set" in _verify_fails()


def test_hmac_downgrade_to_plain_hashes_is_caught(
    monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    """A forger rewrites keyed events as plain SHA-256 ones: refused after a keyed one."""
    statedb.init_home(store_url)
    _some_events(1, "before")  # plain: written before the key existed
    monkeypatch.setenv("AIGW_AUDIT_KEY", "a-long-secret-audit-key-1234")
    _some_events(2, "after")
    report = json.loads(ok("audit", "verify", "--json"))
    assert report["ok"] and (report["checked"], report["hmac_sealed"]) == (3, 2)
    _rechain(3, PLAIN, None)
    assert "event 3 (teams.create forged" in _verify_fails()
    assert "not HMAC-sealed after keyed events" in _verify_fails()


def _rechain(seq: int, alg: str, key: bytes | None) -> None:
    """What a forger with write access does: edit event ``seq``, recompute its hash and
    every later one's with ``alg``/``key``, move the head."""
    rows = events()
    prev = rows[seq - 2]["hash"]
    on_postgres = statedb.on_postgres()
    updates = []
    for row in rows[seq - 1 :]:
        if row["seq"] == seq:
            row["target"] = "forged"
        event = AuditEvent(**row)
        event.alg, event.prev_hash = alg, prev
        event.hash = digest(alg, key, prev, event)
        # PostgreSQL stores them as text; SQLite in its compact form (0013_audit_compact):
        # an alg code and the hash's bytes.
        stored = f"alg = '{alg}', hash = '{event.hash}'"
        if not on_postgres:
            stored = f"alg = {ALGS[alg]}, hash = X'{event.hash}'"
        updates.append(
            f"UPDATE {audit_table()} SET target = '{event.target}', {stored} "
            f"WHERE seq = {event.seq}"
        )
        prev = event.hash
    statedb.execute(*updates, f"UPDATE audit_head SET hash = '{prev}'")


def test_set_key_stores_it_in_the_keyring_and_seals_new_events(store_url: str) -> None:
    statedb.init_home(store_url)
    _some_events(1, "before")
    out = ok("audit", "set-key", "--generate")
    assert "shown once" in out
    assert MemoryKeyring.store  # the key went to the (test) keyring
    _some_events(1, "after")
    report = json.loads(ok("audit", "verify", "--json"))
    assert report["ok"] and report["key"] is True and report["hmac_sealed"] >= 1


# -- bodies ----------------------------------------------------------------------------


async def test_bodies_are_kept_only_when_the_team_opts_in_and_pruned_after_retention(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, store_url: str
) -> None:
    monkeypatch.setattr(app_mod, "PRUNE_SECONDS", 0.05)
    now = [time.time()]
    monkeypatch.setattr(app_mod, "_clock", lambda: now[0])
    await asyncio.to_thread(statedb.init_home, store_url)
    await aok("teams", "create", "legal")
    await aok("teams", "create", "quiet")
    await aok("teams", "update", "legal", "--log-bodies", "--retention", "30d")
    cfg = statedb.use_store(Config(), store_url)
    cfg.providers["openai"] = provider_config("openai", "openai", fake_openai.base_url + "/v1")
    server = await listening(create_app(cfg, state()))
    try:
        db = server.app[GATEWAY].store
        legal, _ = await db.keys.create(team="legal")
        quiet, _ = await db.keys.create(team="quiet")
        fake_openai.default = Reply(text="The answer, as the provider wrote it.")
        msgs = [{"role": "user", "content": "the secret plan is [EMAIL_1]"}]
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=legal, max_retries=0)
        async with client:
            kept = await chat(client, model="openai/gpt-4o-mini", messages=msgs)
            kept_stream = await chat(client, model="openai/gpt-4o-mini", messages=msgs, stream=True)
            embedded = await client.embeddings.with_raw_response.create(
                model="openai/text-embedding-3-small", input="embed [EMAIL_1]"
            )
            kept_embedding = embedded.headers["x-request-id"]
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=quiet, max_retries=0)
        async with client:
            not_kept = await chat(client, model="openai/gpt-4o-mini", messages=msgs)

        bodies = {b.request_id: b for b in await _bodies(db)}
        assert set(bodies) == {kept, kept_stream, kept_embedding}
        assert "embed [EMAIL_1]" in (bodies[kept_embedding].request or "")
        assert '"embedding"' in (bodies[kept_embedding].answer or "")
        del bodies[kept_embedding]
        for rid in (kept, kept_stream):
            body = bodies[rid]
            assert "the secret plan is [EMAIL_1]" in (body.request or "")
            assert json.loads(body.request or "")["model"] == "gpt-4o-mini"  # as sent upstream
        assert "The answer, as the provider wrote it." in (bodies[kept].answer or "")
        streamed = bodies[kept_stream].answer or ""
        assert streamed.startswith("data: ") and streamed.endswith("data: [DONE]\n\n")
        text = "".join(
            choice["delta"].get("content") or ""
            for line in streamed.splitlines()
            if line.startswith("data: {")
            for choice in json.loads(line[6:])["choices"]
        )
        assert text == "The answer, as the provider wrote it."
        assert not_kept not in bodies

        shown = json.loads((await run_cli("audit", "show", kept, "--json")).output)
        assert shown["events"][0]["request_id"] == kept
        assert "secret plan" in shown["bodies"][0]["request"]

        # 30 days later the pruner deletes them (the clock moves, nothing sleeps).
        now[0] = time.time() + 30 * 86400 + 1  # from now: the calls started after `now`
        async with asyncio.timeout(10):
            while await _bodies(db):  # noqa: ASYNC110 - waiting on the background pruner
                await asyncio.sleep(0.02)
        # The events stay (and still verify).
        assert {kept, kept_stream, not_kept} <= {e["request_id"] for e in events()}
    finally:
        await server.close()
    assert (await run_cli("audit", "verify")).exit_code == 0


async def _bodies(store: Store) -> list[Any]:
    rows = await asyncio.to_thread(statedb.sql, "SELECT request_id FROM audit_bodies")
    out = []
    for r in rows:
        out.extend(await store.audit.bodies_of(r["request_id"], 0))
    return out


def test_retention_options_are_checked(store_url: str) -> None:
    statedb.init_home(store_url)
    ok("teams", "create", "t")
    bad = aigw("teams", "update", "t", "--no-log-bodies", "--retention", "3d")
    assert bad.exit_code != 0 and "--retention goes with --log-bodies" in bad.output
    bad = aigw("teams", "update", "t", "--log-bodies", "--retention", "soon")
    assert bad.exit_code != 0 and "not a duration" in bad.output
    out = json.loads(ok("teams", "update", "t", "--log-bodies", "--json"))
    assert out["log_bodies"] is True and out["body_retention_s"] == 30 * 86400
    out = json.loads(ok("teams", "update", "t", "--no-log-bodies", "--json"))
    assert out["log_bodies"] is False


# -- logs and export -------------------------------------------------------------------


async def test_logs_filters_json_and_follow(gw: Running) -> None:
    key_a, _ = await gw.gw.store.keys.create(team="team-a")
    key_b, rec_b = await gw.gw.store.keys.create(team="team-b")
    async with gw.client(key_a) as a, gw.client(key_b) as b:
        id_a = await chat(a)
        id_b = await chat(b)

    def lines(result: Any) -> list[dict[str, Any]]:
        assert result.exit_code == 0, result.output
        return [json.loads(x) for x in result.output.splitlines() if x.strip()]

    team_a = lines(await run_cli("logs", "--team", "team-a", "--json"))
    assert [e["request_id"] for e in team_a if e["kind"] == "proxy"] == [id_a]
    by_key = lines(await run_cli("logs", "--key", rec_b.id, "--json"))
    assert [e["request_id"] for e in by_key] == [id_b]
    assert by_key[0]["time"].endswith("+00:00") and by_key[0]["hash"]
    assert lines(await run_cli("logs", "--since", "2099-01-01", "--json")) == []
    table = await run_cli("logs", "--since", "1h")
    assert table.exit_code == 0 and id_a in table.output and id_b in table.output

    # --follow prints events as they are committed, until stopped.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigw",
        "logs",
        "--follow",
        "--json",
        "--team",
        "team-a",
        "--limit",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert first["request_id"] == id_a
        async with gw.client(key_b) as b, gw.client(key_a) as a:
            await chat(b)  # filtered out
            id_new = await chat(a)
        line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert line["request_id"] == id_new and line["team"] == "team-a"
    finally:
        proc.terminate()
        await proc.wait()


async def test_export_jsonl_and_csv(gw: Running, tmp_path: Path) -> None:
    key, _ = await gw.gw.store.keys.create(team="team-a")
    async with gw.client(key) as client:
        ids = [await chat(client) for _ in range(3)]
    out = tmp_path / "audit.jsonl"
    result = await run_cli("audit", "export", "--since", "30d", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert set(ids) <= {r["request_id"] for r in rows}
    assert rows[0]["prev_hash"] == GENESIS
    assert f"exported {len(rows)} events" in result.output

    csv_out = tmp_path / "audit.csv"
    result = await run_cli("audit", "export", "--format", "csv", "-o", str(csv_out))
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(csv_out.read_text())))
    assert len(table) == len(rows)
    assert [r["hash"] for r in table] == [r["hash"] for r in rows]

    to_stdout = await run_cli("audit", "export", "--since", "1h")
    assert to_stdout.exit_code == 0 and len(to_stdout.output.splitlines()) == len(rows)
    bad = await run_cli("audit", "export", "--format", "xml")
    assert bad.exit_code != 0 and "--format must be one of jsonl, csv" in bad.output


def test_audit_show_unknown_request_is_a_clear_error(store_url: str) -> None:
    statedb.init_home(store_url)
    result = aigw("audit", "show", "req_nope")
    assert result.exit_code != 0 and "no audit event for request 'req_nope'" in result.output


def test_canonical_form_is_stable() -> None:
    a = AuditEvent(ts=1.5, kind="admin", action="x", target="y")
    assert canonical(a) == canonical(AuditEvent(ts=1.5, kind="admin", action="x", target="y"))
    assert canonical(a) != canonical(AuditEvent(ts=1.5, kind="admin", action="x", target="z"))
    assert canonical(a).startswith(b'["x",')  # values in sorted field order: action first
    assert "hash" not in HASHED and "prev_hash" not in HASHED and "seq" in HASHED


async def test_no_ledger_row_without_its_audit_event(gw: Running) -> None:
    """One transaction: when the audit event cannot be written, neither is the ledger
    row, and the client is not given an answer the gateway could not record."""
    key, _ = await gw.gw.store.keys.create(team="team-a")
    async with gw.client(key) as client:
        await chat(client)  # warm: the key is known
        _sql("ALTER TABLE {audit} RENAME TO audit_away")
        try:
            with pytest.raises(openai.APIStatusError) as refused:
                await chat(client)
        finally:
            _sql("ALTER TABLE audit_away RENAME TO {audit}")
        assert refused.value.status_code == 503
        rid = request_id_of(refused.value)
        assert rid not in ledger_ids()
        await chat(client)  # and it recovers
    assert (await run_cli("audit", "verify")).exit_code == 0


async def test_rows_of_one_append_share_a_commit() -> None:
    from aigw.store.writer import GroupWriter

    batches: list[list[int]] = []

    async def write_many(rows: list[int]) -> None:
        batches.append(rows)

    writer: GroupWriter[int] = GroupWriter(write_many, name="test")
    task = asyncio.create_task(writer.run())
    await asyncio.gather(writer.append(1, 2), writer.append(3), writer.append(4, 5, 6))
    writer.close()
    await task
    assert sorted(x for b in batches for x in b) == [1, 2, 3, 4, 5, 6]
    for group in ((1, 2), (4, 5, 6)):
        assert any(set(group) <= set(b) for b in batches)
    assert writer.rows == 3  # appends, as before: one per call
