-- Console sessions: an admin signed in from a browser. Only the SHA-256 of the cookie's secret
-- is stored (hex); `id` is a public UUID for listing and revoking. Times are unix milliseconds.
CREATE TABLE console_sessions (
    id          TEXT   NOT NULL PRIMARY KEY,
    secret_hash TEXT   NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    user_agent  TEXT,
    address     TEXT
);
