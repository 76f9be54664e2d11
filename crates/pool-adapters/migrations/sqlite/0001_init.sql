-- The store of record on SQLite. Times are unix milliseconds; ids are UUID text.
-- `status_until` NULL with a status other than 'active' is an open-ended hold (manual disable).

CREATE TABLE upstream_keys (
    id                   TEXT    NOT NULL PRIMARY KEY,
    provider             TEXT    NOT NULL,
    secret               TEXT    NOT NULL,
    secret_hash          TEXT    NOT NULL, -- sha256 hex of the secret
    label                TEXT,
    created_at           BIGINT  NOT NULL,
    expires_at           BIGINT,
    status               TEXT    NOT NULL DEFAULT 'active',
    status_reason        TEXT,
    status_since         BIGINT,
    status_until         BIGINT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    total_requests       BIGINT  NOT NULL DEFAULT 0,
    success_count        BIGINT  NOT NULL DEFAULT 0,
    failure_count        BIGINT  NOT NULL DEFAULT 0,
    last_used_at         BIGINT,
    last_success_at      BIGINT,
    last_failure_at      BIGINT,
    UNIQUE (provider, secret_hash)
);

CREATE INDEX upstream_keys_provider ON upstream_keys (provider);

CREATE TABLE client_tokens (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL,
    prefix        TEXT   NOT NULL,
    token_hash    TEXT   NOT NULL UNIQUE, -- sha256 hex of the token
    providers     TEXT,                   -- JSON array of provider names, NULL = all
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    request_count BIGINT NOT NULL DEFAULT 0,
    last_used_at  BIGINT
);

CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
