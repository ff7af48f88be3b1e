"""PostgreSQL schema: append-only, named migrations. Never edit one that has shipped.

The first migration is the SQLite schema as of ``0012_admin_keys`` in PostgreSQL's
types (times are unix seconds as ``double precision``, money is ``bigint`` nano-USD,
flags stay 0/1 integers so rows read back exactly as from SQLite), plus what several
processes need: ``ledger_batches`` (the ids of committed group commits, so a spooled
batch replayed after an ambiguous failure is never counted twice), a ``NOTIFY`` on
every key and team change, and ledger row ids unique across processes.
"""

from __future__ import annotations

_ROLLUP_COLUMNS = """
    bucket             BIGINT NOT NULL,
    team               BIGINT NOT NULL,
    app                BIGINT NOT NULL,
    key                BIGINT NOT NULL,
    model              BIGINT NOT NULL,
    provider           BIGINT NOT NULL,
    status             INTEGER NOT NULL,
    requests           BIGINT NOT NULL,
    errors             BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nusd          BIGINT NOT NULL,
    unpriced           BIGINT NOT NULL,
    cache_hits         BIGINT NOT NULL,
    cache_misses       BIGINT NOT NULL,
    saved_nusd         BIGINT NOT NULL,
    streams            BIGINT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    lat_100            BIGINT NOT NULL,
    lat_250            BIGINT NOT NULL,
    lat_500            BIGINT NOT NULL,
    lat_1000           BIGINT NOT NULL,
    lat_2500           BIGINT NOT NULL,
    lat_5000           BIGINT NOT NULL,
    lat_10000          BIGINT NOT NULL,
    lat_30000          BIGINT NOT NULL,
    lat_more           BIGINT NOT NULL,
    PRIMARY KEY (bucket, team, app, key, model, provider, status)
"""

_LIMIT_COLUMNS = """
    rpm          BIGINT,
    tpm          BIGINT,
    max_parallel BIGINT,
    budget_nusd  BIGINT,
    period       TEXT,
    alert_at     TEXT,
    priority     TEXT,
    models       TEXT,
    regions      TEXT,
    cache        TEXT,
    cache_ttl    BIGINT,
    scrub        TEXT
"""

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_schema",
        f"""
        CREATE TABLE keys (
            id          TEXT PRIMARY KEY,
            hash        TEXT NOT NULL UNIQUE,
            prefix      TEXT NOT NULL,
            name        TEXT,
            team        TEXT NOT NULL,
            app         TEXT,
            created_at  DOUBLE PRECISION NOT NULL,
            expires_at  DOUBLE PRECISION,
            revoked_at  DOUBLE PRECISION,
            replaced_by TEXT,
            {_LIMIT_COLUMNS},
            admin       INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE teams (
            name           TEXT PRIMARY KEY,
            {_LIMIT_COLUMNS},
            created_at     DOUBLE PRECISION NOT NULL,
            updated_at     DOUBLE PRECISION NOT NULL,
            body_retention DOUBLE PRECISION
        );
        -- Bumped by every key and team change (the directory's watchers poll it), and
        -- announced on channel aigw_directory so they reload at once.
        CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
        INSERT INTO generation VALUES (1, 0);
        CREATE FUNCTION aigw_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE generation SET value = value + 1 WHERE id = 1;
            PERFORM pg_notify('aigw_directory', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON keys
            FOR EACH STATEMENT EXECUTE FUNCTION aigw_directory_changed();
        CREATE TRIGGER teams_changed AFTER INSERT OR UPDATE OR DELETE ON teams
            FOR EACH STATEMENT EXECUTE FUNCTION aigw_directory_changed();

        CREATE TABLE ledger (
            id                  BIGSERIAL PRIMARY KEY,
            -- batch id + position: unique per row across processes and replays.
            row_id              TEXT NOT NULL UNIQUE,
            ts                  DOUBLE PRECISION NOT NULL,
            request_id          TEXT NOT NULL,
            key_id              TEXT,
            team                TEXT,
            app                 TEXT,
            endpoint            TEXT NOT NULL,
            model               TEXT,
            provider            TEXT,
            upstream_model      TEXT,
            status              INTEGER NOT NULL,
            stream              INTEGER NOT NULL DEFAULT 0,
            prompt_tokens       BIGINT NOT NULL DEFAULT 0,
            completion_tokens   BIGINT NOT NULL DEFAULT 0,
            cached_tokens       BIGINT NOT NULL DEFAULT 0,
            cache_write_tokens  BIGINT NOT NULL DEFAULT 0,
            reasoning_tokens    BIGINT NOT NULL DEFAULT 0,
            usage_estimated     INTEGER NOT NULL DEFAULT 0,
            cost_nusd           BIGINT,
            latency_ms          BIGINT NOT NULL,
            error               TEXT,
            upstream_request_id TEXT,
            attempts            INTEGER NOT NULL DEFAULT 1,
            routing             TEXT,
            cache               TEXT,
            saved_nusd          BIGINT NOT NULL DEFAULT 0
        );
        CREATE INDEX ledger_ts ON ledger (ts);
        CREATE INDEX ledger_request_id ON ledger (request_id);
        -- Group commits already applied (a spooled batch replays at most once).
        CREATE TABLE ledger_batches (
            id         TEXT PRIMARY KEY,
            applied_at DOUBLE PRECISION NOT NULL
        );

        CREATE TABLE names (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE rollup_hour ({_ROLLUP_COLUMNS});
        CREATE TABLE rollup_day ({_ROLLUP_COLUMNS});
        CREATE TABLE retention (
            id             INTEGER PRIMARY KEY CHECK (id = 1),
            rows_before    DOUBLE PRECISION NOT NULL,
            rollups_before DOUBLE PRECISION NOT NULL
        );
        INSERT INTO retention VALUES (1, 0, 0);

        CREATE TABLE limit_counters (
            bucket   TEXT PRIMARY KEY,
            tat      DOUBLE PRECISION NOT NULL,
            interval DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE budget_alerts (
            scope       TEXT NOT NULL,
            name        TEXT NOT NULL,
            period      TEXT NOT NULL,
            mark        TEXT NOT NULL,
            fired_at    DOUBLE PRECISION NOT NULL,
            spent_nusd  BIGINT NOT NULL,
            budget_nusd BIGINT NOT NULL,
            PRIMARY KEY (scope, name, period, mark)
        );

        CREATE TABLE response_cache (
            key        TEXT PRIMARY KEY,
            team       TEXT NOT NULL,
            endpoint   TEXT NOT NULL,
            model      TEXT NOT NULL,
            upstream   TEXT,
            kind       TEXT NOT NULL,
            body       BYTEA NOT NULL,
            usage      BYTEA,
            cost_nusd  BIGINT,
            created    DOUBLE PRECISION NOT NULL,
            expires    DOUBLE PRECISION NOT NULL,
            last_used  DOUBLE PRECISION NOT NULL,
            size       BIGINT NOT NULL
        );
        CREATE INDEX response_cache_lru ON response_cache (last_used);
        CREATE TABLE cache_clears (
            id     BIGSERIAL PRIMARY KEY,
            ts     DOUBLE PRECISION NOT NULL,
            team   TEXT,
            model  TEXT
        );

        CREATE TABLE audit (
            seq               BIGINT PRIMARY KEY,
            ts                DOUBLE PRECISION NOT NULL,
            kind              TEXT NOT NULL,
            request_id        TEXT,
            key_id            TEXT,
            team              TEXT,
            app               TEXT,
            endpoint          TEXT,
            model             TEXT,
            provider          TEXT,
            upstream_model    TEXT,
            status            INTEGER,
            prompt_tokens     BIGINT,
            completion_tokens BIGINT,
            cost_nusd         BIGINT,
            error             TEXT,
            scrub             TEXT,
            actor             TEXT,
            action            TEXT,
            target            TEXT,
            before            TEXT,
            after             TEXT,
            alg               TEXT NOT NULL,
            prev_hash         TEXT NOT NULL,
            hash              TEXT NOT NULL
        );
        CREATE INDEX audit_ts ON audit (ts);
        CREATE INDEX audit_request_id ON audit (request_id);
        -- The chain's head: every append locks this row (SELECT ... FOR UPDATE), so
        -- appends from all processes form one chain in commit order.
        CREATE TABLE audit_head (
            id   INTEGER PRIMARY KEY CHECK (id = 1),
            seq  BIGINT NOT NULL,
            hash TEXT NOT NULL
        );
        INSERT INTO audit_head VALUES (1, 0, '{"0" * 64}');
        CREATE TABLE audit_bodies (
            id         BIGSERIAL PRIMARY KEY,
            request_id TEXT NOT NULL,
            team       TEXT,
            ts         DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            request    TEXT,
            answer     TEXT
        );
        CREATE INDEX audit_bodies_request_id ON audit_bodies (request_id);
        CREATE INDEX audit_bodies_expires ON audit_bodies (expires_at);
        """,
    ),
]
