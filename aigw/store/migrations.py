"""Append-only, named migrations. Never edit one that has shipped: add a new one."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_keys_ledger",
        """
        CREATE TABLE keys (
            id          TEXT PRIMARY KEY,
            hash        TEXT NOT NULL UNIQUE,   -- sha256 hex of the whole key
            prefix      TEXT NOT NULL,          -- first characters, to recognise it
            name        TEXT,
            team        TEXT NOT NULL,
            app         TEXT,
            created_at  REAL NOT NULL,
            expires_at  REAL,
            revoked_at  REAL,
            replaced_by TEXT
        );
        CREATE TABLE ledger (
            id                 INTEGER PRIMARY KEY,
            ts                 REAL NOT NULL,
            request_id         TEXT NOT NULL,
            key_id             TEXT,
            team               TEXT,
            app                TEXT,
            endpoint           TEXT NOT NULL,
            model              TEXT,
            provider           TEXT,
            upstream_model     TEXT,
            status             INTEGER NOT NULL,
            stream             INTEGER NOT NULL DEFAULT 0,
            prompt_tokens      INTEGER NOT NULL DEFAULT 0,
            completion_tokens  INTEGER NOT NULL DEFAULT 0,
            cached_tokens      INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
            usage_estimated    INTEGER NOT NULL DEFAULT 0,
            cost_nusd          INTEGER,          -- nano-USD; NULL = no price known
            latency_ms         INTEGER NOT NULL,
            error              TEXT
        );
        CREATE INDEX ledger_ts ON ledger (ts);
        CREATE INDEX ledger_request_id ON ledger (request_id);
        -- Bumped by every change to keys, so a running server can notice CLI edits
        -- with one tiny query instead of re-reading the table.
        CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
        INSERT INTO generation VALUES (1, 0);
        CREATE TRIGGER keys_ins AFTER INSERT ON keys
            BEGIN UPDATE generation SET value = value + 1; END;
        CREATE TRIGGER keys_upd AFTER UPDATE ON keys
            BEGIN UPDATE generation SET value = value + 1; END;
        CREATE TRIGGER keys_del AFTER DELETE ON keys
            BEGIN UPDATE generation SET value = value + 1; END;
        """,
    ),
]
