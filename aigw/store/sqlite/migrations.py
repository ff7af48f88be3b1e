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
    (
        "0002_teams_limits",
        """
        -- Teams carry limits for all their keys; a key may also carry its own. NULL means
        -- "no limit" (or, for period and alert_at, "the [budgets] default").
        CREATE TABLE teams (
            name         TEXT PRIMARY KEY,
            rpm          INTEGER,          -- requests per minute
            tpm          INTEGER,          -- tokens per minute
            max_parallel INTEGER,          -- requests in flight at once
            budget_nusd  INTEGER,          -- hard budget per period, nano-USD
            period       TEXT,             -- day | week | month
            alert_at     TEXT,             -- '50,80,100'; '' = no alerts
            priority     TEXT,             -- high | normal | low
            models       TEXT,             -- comma-separated globs
            created_at   REAL NOT NULL,
            updated_at   REAL NOT NULL
        );
        ALTER TABLE keys ADD COLUMN rpm INTEGER;
        ALTER TABLE keys ADD COLUMN tpm INTEGER;
        ALTER TABLE keys ADD COLUMN max_parallel INTEGER;
        ALTER TABLE keys ADD COLUMN budget_nusd INTEGER;
        ALTER TABLE keys ADD COLUMN period TEXT;
        ALTER TABLE keys ADD COLUMN alert_at TEXT;
        ALTER TABLE keys ADD COLUMN priority TEXT;
        ALTER TABLE keys ADD COLUMN models TEXT;
        -- Team edits reach a running server the way key edits do.
        CREATE TRIGGER teams_ins AFTER INSERT ON teams
            BEGIN UPDATE generation SET value = value + 1; END;
        CREATE TRIGGER teams_upd AFTER UPDATE ON teams
            BEGIN UPDATE generation SET value = value + 1; END;
        CREATE TRIGGER teams_del AFTER DELETE ON teams
            BEGIN UPDATE generation SET value = value + 1; END;
        -- Rate-limit state (GCRA): one row per bucket that is not full, written in
        -- batches. tat = theoretical arrival time (unix s); interval = seconds per unit
        -- when it was written, so a changed limit converts the debt, not the time.
        CREATE TABLE limit_counters (
            bucket   TEXT PRIMARY KEY,
            tat      REAL NOT NULL,
            interval REAL NOT NULL
        );
        -- Budget alerts that fired, so each fires at most once per period.
        CREATE TABLE budget_alerts (
            scope       TEXT NOT NULL,     -- team | key
            name        TEXT NOT NULL,     -- team name or key id
            period      TEXT NOT NULL,     -- e.g. 'month:2026-11-01'
            mark        TEXT NOT NULL,     -- threshold percent ('80') or 'refused'
            fired_at    REAL NOT NULL,
            spent_nusd  INTEGER NOT NULL,
            budget_nusd INTEGER NOT NULL,
            PRIMARY KEY (scope, name, period, mark)
        );
        """,
    ),
    (
        "0003_upstream_request_id",
        """
        -- The provider's own id for the call (OpenAI x-request-id, Anthropic request-id),
        -- to quote to its support. request_id stays the client's id when it sent a sane
        -- one; it is not unique (two calls may share a client id).
        ALTER TABLE ledger ADD COLUMN upstream_request_id TEXT;
        """,
    ),
    (
        "0004_ledger_attempts",
        """
        -- Failover and retries: how many upstream attempts a call made (0 for one
        -- refused before any; 1 for rows written before this migration), and why the
        -- answer came from where it did: the failed attempts and skipped targets, JSON.
        -- provider and upstream_model are the final target's.
        ALTER TABLE ledger ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE ledger ADD COLUMN routing TEXT;
        """,
    ),
    (
        "0005_regions",
        """
        -- Data residency: comma-separated regions a team's or key's calls may go to
        -- (providers' [providers.X] region); NULL = any provider.
        ALTER TABLE teams ADD COLUMN regions TEXT;
        ALTER TABLE keys ADD COLUMN regions TEXT;
        """,
    ),
    (
        "0006_ledger_cache",
        """
        -- The response cache: hit | miss | bypass (NULL: cache off or not cacheable), and
        -- for a hit the cost of the original call it saved, nano-USD.
        ALTER TABLE ledger ADD COLUMN cache TEXT;
        ALTER TABLE ledger ADD COLUMN saved_nusd INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "0007_cache",
        """
        -- The response cache: one row per answer, keyed by a hash of the canonical
        -- request (and the team, unless [cache] shared). body is the answer in the
        -- hub format (chat) or as sent (embeddings), kind says which. cost_nusd is what
        -- the original call cost: what each hit saves. Sizes in bytes, times unix s.
        CREATE TABLE response_cache (
            key        TEXT PRIMARY KEY,
            team       TEXT NOT NULL,
            endpoint   TEXT NOT NULL,
            model      TEXT NOT NULL,
            upstream   TEXT,               -- provider/model that answered
            kind       TEXT NOT NULL,      -- hub | raw
            body       BLOB NOT NULL,
            usage      TEXT,               -- JSON: the original call's token counts
            cost_nusd  INTEGER,
            created    REAL NOT NULL,
            expires    REAL NOT NULL,
            last_used  REAL NOT NULL,
            size       INTEGER NOT NULL
        );
        CREATE INDEX response_cache_lru ON response_cache (last_used);
        -- `aigw cache clear` run while a server holds answers in memory: the server
        -- polls this table and drops the same answers from memory.
        CREATE TABLE cache_clears (
            id     INTEGER PRIMARY KEY,
            ts     REAL NOT NULL,
            team   TEXT,
            model  TEXT
        );
        -- Per team / key: off | deterministic | all, and seconds an answer is kept.
        ALTER TABLE teams ADD COLUMN cache TEXT;
        ALTER TABLE teams ADD COLUMN cache_ttl INTEGER;
        ALTER TABLE keys ADD COLUMN cache TEXT;
        ALTER TABLE keys ADD COLUMN cache_ttl INTEGER;
        """,
    ),
    (
        "0008_scrub",
        """
        -- Scrub actions overriding the config's per detector, e.g. 'email=block,phone=redact';
        -- NULL = the config's. A key's override beats its team's for that detector.
        ALTER TABLE teams ADD COLUMN scrub TEXT;
        ALTER TABLE keys ADD COLUMN scrub TEXT;
        """,
    ),
    (
        "0009_audit",
        """
        -- The audit trail: one event per proxied call (kind 'proxy') and per admin change
        -- (kind 'admin'), hash-chained: hash = SHA-256 (or HMAC-SHA-256 when a key is set,
        -- alg says which) of prev_hash and the event's canonical JSON (aigw.audit).
        -- seq is assigned by the writer (head seq + 1), never reused.
        CREATE TABLE audit (
            seq            INTEGER PRIMARY KEY,
            ts             REAL NOT NULL,
            kind           TEXT NOT NULL,      -- proxy | admin
            request_id     TEXT,
            key_id         TEXT,
            team           TEXT,
            app            TEXT,
            endpoint       TEXT,
            model          TEXT,              -- as the client asked for it
            provider       TEXT,              -- the target that answered (or was tried)
            upstream_model TEXT,
            status         INTEGER,
            prompt_tokens  INTEGER,
            completion_tokens INTEGER,
            cost_nusd      INTEGER,
            error          TEXT,
            scrub          TEXT,              -- JSON {detector: count}, NULL = none
            actor          TEXT,              -- admin: OS user@host
            action         TEXT,              -- admin: keys.create, teams.update, ...
            target         TEXT,              -- admin: key id, team name, provider name
            before         TEXT,              -- admin: JSON, secrets left out
            after          TEXT,              -- admin: JSON, secrets left out
            alg            TEXT NOT NULL,     -- sha256 | hmac-sha256
            prev_hash      TEXT NOT NULL,
            hash           TEXT NOT NULL
        );
        CREATE INDEX audit_ts ON audit (ts);
        CREATE INDEX audit_request_id ON audit (request_id);
        -- The chain's head (last seq and hash): a deleted last event is caught too.
        CREATE TABLE audit_head (
            id   INTEGER PRIMARY KEY CHECK (id = 1),
            seq  INTEGER NOT NULL,
            hash TEXT NOT NULL
        );
        -- Prompt and answer bodies of teams that opted in (teams.body_retention), as the
        -- provider saw them (scrubbed), deleted once expires_at passes. Not chained: they
        -- are meant to disappear.
        CREATE TABLE audit_bodies (
            id         INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL,
            team       TEXT,
            ts         REAL NOT NULL,
            expires_at REAL NOT NULL,
            request    TEXT,
            answer     TEXT
        );
        CREATE INDEX audit_bodies_request_id ON audit_bodies (request_id);
        CREATE INDEX audit_bodies_expires ON audit_bodies (expires_at);
        -- Seconds to keep a team's prompt and answer bodies; NULL = not logged.
        ALTER TABLE teams ADD COLUMN body_retention REAL;
        """,
    ),
    (
        "0010_rollups",
        """
        -- Interned strings for the rollups (team, app, key id, model, provider): id 0 is
        -- "none" (NULL in the ledger) and has no row, so rollup keys are never NULL.
        CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        -- Ledger totals per UTC hour and per UTC day (bucket: unix seconds at its start)
        -- and per team, app, key, model, provider and status; maintained in the ledger's
        -- group commit. cost_nusd sums the priced rows, unpriced counts the others;
        -- lat_* is a latency histogram (ms, upper bounds; lat_more: above 30 s).
        CREATE TABLE rollup_hour (
            bucket             INTEGER NOT NULL,
            team               INTEGER NOT NULL,
            app                INTEGER NOT NULL,
            key                INTEGER NOT NULL,
            model              INTEGER NOT NULL,
            provider           INTEGER NOT NULL,
            status             INTEGER NOT NULL,
            requests           INTEGER NOT NULL,
            errors             INTEGER NOT NULL,
            prompt_tokens      INTEGER NOT NULL,
            completion_tokens  INTEGER NOT NULL,
            cached_tokens      INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            reasoning_tokens   INTEGER NOT NULL,
            cost_nusd          INTEGER NOT NULL,
            unpriced           INTEGER NOT NULL,
            cache_hits         INTEGER NOT NULL,
            cache_misses       INTEGER NOT NULL,
            saved_nusd         INTEGER NOT NULL,
            streams            INTEGER NOT NULL,
            latency_ms         INTEGER NOT NULL,
            lat_100            INTEGER NOT NULL,
            lat_250            INTEGER NOT NULL,
            lat_500            INTEGER NOT NULL,
            lat_1000           INTEGER NOT NULL,
            lat_2500           INTEGER NOT NULL,
            lat_5000           INTEGER NOT NULL,
            lat_10000          INTEGER NOT NULL,
            lat_30000          INTEGER NOT NULL,
            lat_more           INTEGER NOT NULL,
            PRIMARY KEY (bucket, team, app, key, model, provider, status)
        ) WITHOUT ROWID;
        CREATE TABLE rollup_day (
            bucket             INTEGER NOT NULL,
            team               INTEGER NOT NULL,
            app                INTEGER NOT NULL,
            key                INTEGER NOT NULL,
            model              INTEGER NOT NULL,
            provider           INTEGER NOT NULL,
            status             INTEGER NOT NULL,
            requests           INTEGER NOT NULL,
            errors             INTEGER NOT NULL,
            prompt_tokens      INTEGER NOT NULL,
            completion_tokens  INTEGER NOT NULL,
            cached_tokens      INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            reasoning_tokens   INTEGER NOT NULL,
            cost_nusd          INTEGER NOT NULL,
            unpriced           INTEGER NOT NULL,
            cache_hits         INTEGER NOT NULL,
            cache_misses       INTEGER NOT NULL,
            saved_nusd         INTEGER NOT NULL,
            streams            INTEGER NOT NULL,
            latency_ms         INTEGER NOT NULL,
            lat_100            INTEGER NOT NULL,
            lat_250            INTEGER NOT NULL,
            lat_500            INTEGER NOT NULL,
            lat_1000           INTEGER NOT NULL,
            lat_2500           INTEGER NOT NULL,
            lat_5000           INTEGER NOT NULL,
            lat_10000          INTEGER NOT NULL,
            lat_30000          INTEGER NOT NULL,
            lat_more           INTEGER NOT NULL,
            PRIMARY KEY (bucket, team, app, key, model, provider, status)
        ) WITHOUT ROWID;
        -- Retention: raw ledger rows before rows_before were pruned (their hours live on
        -- in the rollups), and rollups before rollups_before.
        CREATE TABLE retention (
            id            INTEGER PRIMARY KEY CHECK (id = 1),
            rows_before   REAL NOT NULL,
            rollups_before REAL NOT NULL
        );
        INSERT INTO retention VALUES (1, 0, 0);
        -- Backfill from the rows already in the ledger.
        INSERT OR IGNORE INTO names (name)
            SELECT team FROM ledger WHERE team IS NOT NULL
            UNION SELECT app FROM ledger WHERE app IS NOT NULL
            UNION SELECT key_id FROM ledger WHERE key_id IS NOT NULL
            UNION SELECT model FROM ledger WHERE model IS NOT NULL
            UNION SELECT provider FROM ledger WHERE provider IS NOT NULL;
        INSERT INTO rollup_hour
            SELECT (CAST(l.ts / 3600 AS INTEGER)
                    - (CAST(l.ts / 3600 AS INTEGER) * 3600 > l.ts)
                    + (CAST(l.ts / 3600 AS INTEGER) * 3600 + 3600 <= l.ts)) * 3600,
                   IFNULL(t.id, 0), IFNULL(a.id, 0), IFNULL(k.id, 0), IFNULL(m.id, 0),
                   IFNULL(p.id, 0), l.status,
                   COUNT(*), SUM(l.status >= 400), SUM(l.prompt_tokens),
                   SUM(l.completion_tokens), SUM(l.cached_tokens),
                   SUM(l.cache_write_tokens), SUM(l.reasoning_tokens),
                   SUM(IFNULL(l.cost_nusd, 0)), SUM(l.cost_nusd IS NULL),
                   SUM(l.cache IS 'hit'), SUM(l.cache IS 'miss'), SUM(l.saved_nusd),
                   SUM(l.stream != 0), SUM(l.latency_ms),
                   SUM(l.latency_ms <= 100),
                   SUM(l.latency_ms > 100 AND l.latency_ms <= 250),
                   SUM(l.latency_ms > 250 AND l.latency_ms <= 500),
                   SUM(l.latency_ms > 500 AND l.latency_ms <= 1000),
                   SUM(l.latency_ms > 1000 AND l.latency_ms <= 2500),
                   SUM(l.latency_ms > 2500 AND l.latency_ms <= 5000),
                   SUM(l.latency_ms > 5000 AND l.latency_ms <= 10000),
                   SUM(l.latency_ms > 10000 AND l.latency_ms <= 30000),
                   SUM(l.latency_ms > 30000)
            FROM ledger l
            LEFT JOIN names t ON t.name = l.team
            LEFT JOIN names a ON a.name = l.app
            LEFT JOIN names k ON k.name = l.key_id
            LEFT JOIN names m ON m.name = l.model
            LEFT JOIN names p ON p.name = l.provider
            WHERE 1
            GROUP BY 1, 2, 3, 4, 5, 6, 7;
        INSERT INTO rollup_day
            SELECT bucket / 86400 * 86400, team, app, key, model, provider, status,
                   SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens),
                   SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
                   SUM(cost_nusd), SUM(unpriced), SUM(cache_hits), SUM(cache_misses),
                   SUM(saved_nusd), SUM(streams), SUM(latency_ms), SUM(lat_100),
                   SUM(lat_250), SUM(lat_500), SUM(lat_1000), SUM(lat_2500), SUM(lat_5000),
                   SUM(lat_10000), SUM(lat_30000), SUM(lat_more)
            FROM rollup_hour WHERE 1
            GROUP BY 1, 2, 3, 4, 5, 6, 7;
        """,
    ),
    (
        "0011_ledger_compact",
        """
        -- The ledger, compact (about a third of the bytes per row): the row id is the
        -- call's time in microseconds since the epoch (ts; bumped by a microsecond when
        -- two calls share one), so time ranges read the table itself, with no ts index.
        -- Repeated names are ids into names (NULL = none). upstream_model: NULL = the
        -- same as model, 0 = none. request_id: for a gateway id 'req_<24 hex>' whose
        -- first 13 hex digits are the row's id, the other 11 as an integer (found by
        -- id, unindexed); else the text (indexed). upstream_request_id: the bytes of
        -- 'req_<hex>', else the text. flags: 1 stream, 2 usage estimated, cache in bits
        -- 2-3 (1 hit, 2 miss, 3 bypass), attempts from bit 4. The view ledger shows
        -- the old columns.
        CREATE TABLE ledger_rows (
            id                 INTEGER PRIMARY KEY,
            request_id         ANY NOT NULL,
            key_id             INTEGER,
            team               INTEGER,
            app                INTEGER,
            endpoint           INTEGER NOT NULL,
            model              INTEGER,
            provider           INTEGER,
            upstream_model     INTEGER,
            status             INTEGER NOT NULL,
            flags              INTEGER NOT NULL,
            prompt_tokens      INTEGER NOT NULL,
            completion_tokens  INTEGER NOT NULL,
            cached_tokens      INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            reasoning_tokens   INTEGER NOT NULL,
            cost_nusd          INTEGER,
            latency_ms         INTEGER NOT NULL,
            saved_nusd         INTEGER NOT NULL,
            error              TEXT,
            upstream_request_id ANY,
            routing            TEXT
        );
        CREATE INDEX ledger_rows_request_id ON ledger_rows (request_id)
            WHERE typeof(request_id) = 'text';
        INSERT OR IGNORE INTO names (name)
            SELECT team FROM ledger WHERE team IS NOT NULL
            UNION SELECT app FROM ledger WHERE app IS NOT NULL
            UNION SELECT key_id FROM ledger WHERE key_id IS NOT NULL
            UNION SELECT endpoint FROM ledger
            UNION SELECT model FROM ledger WHERE model IS NOT NULL
            UNION SELECT provider FROM ledger WHERE provider IS NOT NULL
            UNION SELECT upstream_model FROM ledger WHERE upstream_model IS NOT NULL;
        -- Each old row's microsecond, kept inside the hour its rollups counted it in;
        -- rows sharing one move to the next free ones (in id order), within that hour.
        INSERT INTO ledger_rows
            SELECT t.new, l.request_id, k.id, tm.id, a.id, e.id, m.id, p.id,
                   CASE WHEN l.upstream_model IS l.model THEN NULL
                        WHEN l.upstream_model IS NULL THEN 0 ELSE u.id END,
                   l.status,
                   (l.stream != 0) | ((l.usage_estimated != 0) << 1)
                       | (CASE l.cache WHEN 'hit' THEN 1 WHEN 'miss' THEN 2
                                       WHEN 'bypass' THEN 3 ELSE 0 END << 2)
                       | (l.attempts << 4),
                   l.prompt_tokens, l.completion_tokens, l.cached_tokens,
                   l.cache_write_tokens, l.reasoning_tokens, l.cost_nusd, l.latency_ms,
                   l.saved_nusd, l.error, l.upstream_request_id, l.routing
            FROM (SELECT old,
                         MIN(rn + MAX(us - rn) OVER (PARTITION BY hour ORDER BY rn),
                             hour * 1000000 + 3599999999 - cnt + rn) AS new
                  FROM (SELECT old, hour, us,
                               ROW_NUMBER() OVER (PARTITION BY hour ORDER BY us, old) AS rn,
                               COUNT(*) OVER (PARTITION BY hour) AS cnt
                        FROM (SELECT id AS old, hour,
                                     MIN(MAX(CAST(ROUND(ts * 1000000) AS INTEGER),
                                             hour * 1000000),
                                         hour * 1000000 + 3599999999) AS us
                              FROM (SELECT id, ts,
                                           (CAST(ts / 3600 AS INTEGER)
                                            - (CAST(ts / 3600 AS INTEGER) * 3600 > ts)
                                            + (CAST(ts / 3600 AS INTEGER) * 3600 + 3600 <= ts))
                                           * 3600 AS hour
                                    FROM ledger)))) t
            JOIN ledger l ON l.id = t.old
            LEFT JOIN names k ON k.name = l.key_id
            LEFT JOIN names tm ON tm.name = l.team
            LEFT JOIN names a ON a.name = l.app
            JOIN names e ON e.name = l.endpoint
            LEFT JOIN names m ON m.name = l.model
            LEFT JOIN names p ON p.name = l.provider
            LEFT JOIN names u ON u.name = l.upstream_model
            ORDER BY t.new;
        DROP TABLE ledger;
        CREATE VIEW ledger AS SELECT
            l.id AS id,
            l.id / 1000000.0 AS ts,
            CASE WHEN typeof(l.request_id) = 'integer'
                 THEN printf('req_%013x%011x', l.id, l.request_id)
                 ELSE l.request_id END AS request_id,
            (SELECT name FROM names WHERE id = l.key_id) AS key_id,
            (SELECT name FROM names WHERE id = l.team) AS team,
            (SELECT name FROM names WHERE id = l.app) AS app,
            (SELECT name FROM names WHERE id = l.endpoint) AS endpoint,
            (SELECT name FROM names WHERE id = l.model) AS model,
            (SELECT name FROM names WHERE id = l.provider) AS provider,
            (SELECT name FROM names WHERE id = IFNULL(l.upstream_model, l.model))
                AS upstream_model,
            l.status AS status,
            l.flags & 1 AS stream,
            l.prompt_tokens AS prompt_tokens,
            l.completion_tokens AS completion_tokens,
            l.cached_tokens AS cached_tokens,
            l.cache_write_tokens AS cache_write_tokens,
            l.reasoning_tokens AS reasoning_tokens,
            (l.flags >> 1) & 1 AS usage_estimated,
            l.cost_nusd AS cost_nusd,
            l.latency_ms AS latency_ms,
            l.error AS error,
            CASE WHEN typeof(l.upstream_request_id) = 'blob'
                 THEN 'req_' || lower(hex(l.upstream_request_id))
                 ELSE l.upstream_request_id END AS upstream_request_id,
            l.flags >> 4 AS attempts,
            l.routing AS routing,
            CASE (l.flags >> 2) & 3 WHEN 1 THEN 'hit' WHEN 2 THEN 'miss' WHEN 3 THEN 'bypass' END
                AS cache,
            l.saved_nusd AS saved_nusd
        FROM ledger_rows l;
        """,
    ),
    (
        "0012_admin_keys",
        """
        -- Admin keys open the dashboard and the admin endpoints (/metrics when it is
        -- protected); they cannot make proxied calls. Their team is '(admin)'.
        ALTER TABLE keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "0013_audit_compact",
        """
        -- The audit trail, compact (same events, same hashes; aigw.audit is unchanged):
        -- names are ids into names (key_id .. upstream_model; upstream_model NULL = the
        -- same as model, 0 = none); kind 0 = proxy, 1 = admin; alg 0 = sha256,
        -- 1 = hmac-sha256 (any other value: its text); request_id: for a gateway id
        -- 'req_<24 hex>' whose first 13 hex digits are the event's microsecond (ts *
        -- 1000000 rounded half to even, as the gateway mints them), the other 11 as an
        -- integer (found by ts), else the text (indexed); hash: its 32 bytes (the text
        -- if it is not 64 lowercase hex digits); prev_hash: NULL when it is the hash of
        -- event seq - 1 (GENESIS for event 1), else as hash. Columns without a type: no
        -- affinity, a value is kept as written. The view audit shows the old columns.
        -- aigw_request_id and aigw_hash are aigw's SQL functions
        -- (aigw.store.sqlite.audit_codec): old events are packed as the writer packs.
        CREATE TABLE audit_events (
            seq            INTEGER PRIMARY KEY,
            ts             REAL NOT NULL,
            kind           NOT NULL,
            request_id,
            key_id         INTEGER,
            team           INTEGER,
            app            INTEGER,
            endpoint       INTEGER,
            model          INTEGER,
            provider       INTEGER,
            upstream_model INTEGER,
            status         INTEGER,
            prompt_tokens  INTEGER,
            completion_tokens INTEGER,
            cost_nusd      INTEGER,
            error          TEXT,
            scrub          TEXT,
            actor          TEXT,
            action         TEXT,
            target         TEXT,
            before         TEXT,
            after          TEXT,
            alg            NOT NULL,
            prev_hash,
            hash           NOT NULL
        );
        INSERT OR IGNORE INTO names (name)
            SELECT key_id FROM audit WHERE key_id IS NOT NULL
            UNION SELECT team FROM audit WHERE team IS NOT NULL
            UNION SELECT app FROM audit WHERE app IS NOT NULL
            UNION SELECT endpoint FROM audit WHERE endpoint IS NOT NULL
            UNION SELECT model FROM audit WHERE model IS NOT NULL
            UNION SELECT provider FROM audit WHERE provider IS NOT NULL
            UNION SELECT upstream_model FROM audit WHERE upstream_model IS NOT NULL;
        INSERT INTO audit_events
            SELECT a.seq, a.ts,
                   CASE a.kind WHEN 'proxy' THEN 0 WHEN 'admin' THEN 1 ELSE a.kind END,
                   aigw_request_id(a.request_id, a.ts),
                   k.id, t.id, ap.id, e.id, m.id, p.id,
                   CASE WHEN a.upstream_model IS a.model THEN NULL
                        WHEN a.upstream_model IS NULL THEN 0 ELSE u.id END,
                   a.status, a.prompt_tokens, a.completion_tokens, a.cost_nusd, a.error,
                   a.scrub, a.actor, a.action, a.target, a.before, a.after,
                   CASE a.alg WHEN 'sha256' THEN 0 WHEN 'hmac-sha256' THEN 1 ELSE a.alg END,
                   CASE WHEN a.prev_hash IS (CASE WHEN a.seq = 1 THEN printf('%064d', 0)
                                                  ELSE pv.hash END)
                        THEN NULL ELSE aigw_hash(a.prev_hash) END,
                   aigw_hash(a.hash)
            FROM audit a
            LEFT JOIN audit pv ON pv.seq = a.seq - 1
            LEFT JOIN names k ON k.name = a.key_id
            LEFT JOIN names t ON t.name = a.team
            LEFT JOIN names ap ON ap.name = a.app
            LEFT JOIN names e ON e.name = a.endpoint
            LEFT JOIN names m ON m.name = a.model
            LEFT JOIN names p ON p.name = a.provider
            LEFT JOIN names u ON u.name = a.upstream_model
            ORDER BY a.seq;
        DROP TABLE audit;
        CREATE INDEX audit_events_ts ON audit_events (ts);
        CREATE INDEX audit_events_request_id ON audit_events (request_id)
            WHERE typeof(request_id) = 'text';
        CREATE VIEW audit AS SELECT
            a.seq AS seq,
            a.ts AS ts,
            CASE a.kind WHEN 0 THEN 'proxy' WHEN 1 THEN 'admin' ELSE a.kind END AS kind,
            CASE WHEN typeof(a.request_id) = 'integer'
                 THEN printf('req_%013x%011x',
                             CAST(a.ts * 1000000 + 0.5 AS INTEGER)
                             - (a.ts * 1000000 + 0.5 = CAST(a.ts * 1000000 + 0.5 AS INTEGER)
                                AND CAST(a.ts * 1000000 + 0.5 AS INTEGER) % 2 = 1),
                             a.request_id)
                 ELSE a.request_id END AS request_id,
            (SELECT name FROM names WHERE id = a.key_id) AS key_id,
            (SELECT name FROM names WHERE id = a.team) AS team,
            (SELECT name FROM names WHERE id = a.app) AS app,
            (SELECT name FROM names WHERE id = a.endpoint) AS endpoint,
            (SELECT name FROM names WHERE id = a.model) AS model,
            (SELECT name FROM names WHERE id = a.provider) AS provider,
            (SELECT name FROM names WHERE id = IFNULL(a.upstream_model, a.model))
                AS upstream_model,
            a.status AS status,
            a.prompt_tokens AS prompt_tokens,
            a.completion_tokens AS completion_tokens,
            a.cost_nusd AS cost_nusd,
            a.error AS error,
            a.scrub AS scrub,
            a.actor AS actor,
            a.action AS action,
            a.target AS target,
            a.before AS before,
            a.after AS after,
            CASE a.alg WHEN 0 THEN 'sha256' WHEN 1 THEN 'hmac-sha256' ELSE a.alg END AS alg,
            CASE WHEN a.prev_hash IS NOT NULL
                 THEN CASE typeof(a.prev_hash) WHEN 'blob' THEN lower(hex(a.prev_hash))
                                               ELSE a.prev_hash END
                 WHEN a.seq = 1 THEN printf('%064d', 0)
                 ELSE (SELECT CASE typeof(p.hash) WHEN 'blob' THEN lower(hex(p.hash))
                                                  ELSE p.hash END
                       FROM audit_events p WHERE p.seq = a.seq - 1) END AS prev_hash,
            CASE typeof(a.hash) WHEN 'blob' THEN lower(hex(a.hash)) ELSE a.hash END AS hash
        FROM audit_events a;
        """,
    ),
    (
        "0014_ledger_text_ids",
        """
        -- ledger_rows' ids are declared ANY, which is NUMERIC affinity: a client's
        -- request id such as '007' or '1e3' was stored as a number (7, 1000.0). From
        -- here on, a request id that is not a gateway id's random part is the blob of
        -- its UTF-8 bytes, and an upstream id that is not 'req_<hex>' bytes is its text
        -- behind char(1) (affinity converts neither). Text ids already stored are
        -- converted; ids already turned into numbers cannot be told apart from gateway
        -- ids (integers) and keep their number as text (reals).
        DROP VIEW ledger;
        DROP INDEX ledger_rows_request_id;
        UPDATE ledger_rows SET request_id = CAST(CAST(request_id AS TEXT) AS BLOB)
            WHERE typeof(request_id) IN ('text', 'real');
        UPDATE ledger_rows SET upstream_request_id = char(1) || upstream_request_id
            WHERE typeof(upstream_request_id) IN ('integer', 'real')
               OR (typeof(upstream_request_id) = 'text'
                   AND substr(upstream_request_id, 1, 1) = char(1));
        CREATE INDEX ledger_rows_request_id ON ledger_rows (request_id)
            WHERE typeof(request_id) <> 'integer';
        CREATE VIEW ledger AS SELECT
            l.id AS id,
            l.id / 1000000.0 AS ts,
            CASE typeof(l.request_id)
                 WHEN 'integer' THEN printf('req_%013x%011x', l.id, l.request_id)
                 WHEN 'blob' THEN CAST(l.request_id AS TEXT)
                 ELSE l.request_id END AS request_id,
            (SELECT name FROM names WHERE id = l.key_id) AS key_id,
            (SELECT name FROM names WHERE id = l.team) AS team,
            (SELECT name FROM names WHERE id = l.app) AS app,
            (SELECT name FROM names WHERE id = l.endpoint) AS endpoint,
            (SELECT name FROM names WHERE id = l.model) AS model,
            (SELECT name FROM names WHERE id = l.provider) AS provider,
            (SELECT name FROM names WHERE id = IFNULL(l.upstream_model, l.model))
                AS upstream_model,
            l.status AS status,
            l.flags & 1 AS stream,
            l.prompt_tokens AS prompt_tokens,
            l.completion_tokens AS completion_tokens,
            l.cached_tokens AS cached_tokens,
            l.cache_write_tokens AS cache_write_tokens,
            l.reasoning_tokens AS reasoning_tokens,
            (l.flags >> 1) & 1 AS usage_estimated,
            l.cost_nusd AS cost_nusd,
            l.latency_ms AS latency_ms,
            l.error AS error,
            CASE WHEN typeof(l.upstream_request_id) = 'blob'
                 THEN 'req_' || lower(hex(l.upstream_request_id))
                 WHEN substr(l.upstream_request_id, 1, 1) = char(1)
                 THEN substr(l.upstream_request_id, 2)
                 ELSE l.upstream_request_id END AS upstream_request_id,
            l.flags >> 4 AS attempts,
            l.routing AS routing,
            CASE (l.flags >> 2) & 3 WHEN 1 THEN 'hit' WHEN 2 THEN 'miss' WHEN 3 THEN 'bypass' END
                AS cache,
            l.saved_nusd AS saved_nusd
        FROM ledger_rows l;
        """,
    ),
]
