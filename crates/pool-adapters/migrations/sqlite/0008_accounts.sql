-- Community accounts (see pool_core::account). Emails are stored as parsed (trimmed, lower-case)
-- and are unique; a password is an argon2id PHC string; codes and invites are stored only as
-- hashes (hex). `token_id` is the user's client token in client_tokens. Times are unix ms.
CREATE TABLE users (
    id            TEXT   NOT NULL PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT,
    status        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    last_login    BIGINT,
    token_id      TEXT   NOT NULL,
    name          TEXT
);
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX users_status ON users (status, created_at, id);

-- One live code per (email, purpose); `tries` only grows, by one per try, in SQL.
CREATE TABLE verification_codes (
    email      TEXT   NOT NULL,
    purpose    TEXT   NOT NULL,
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    tries      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (email, purpose)
);
CREATE INDEX verification_codes_expiry ON verification_codes (expires_at);

-- One tally per email and per client address (`scope`): the local day it counts, the sends
-- that day, the last send and the one before it (so a racing send sees the other).
CREATE TABLE code_sends (
    scope   TEXT   NOT NULL,
    subject TEXT   NOT NULL,
    day     TEXT   NOT NULL,
    sends   BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    prev_at BIGINT,
    PRIMARY KEY (scope, subject)
);

-- One row per user per local day (YYYY-MM-DD): the unique pair is what makes a sign-in count
-- once, however many arrive at the same moment.
CREATE TABLE sign_ins (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     TEXT    NOT NULL,
    at_ms   BIGINT  NOT NULL,
    UNIQUE (user_id, day)
);

-- Invite codes: used once (`used_at` set). `used_by` is no foreign key: deleting the user must
-- not make the code usable again.
CREATE TABLE invites (
    id          TEXT   NOT NULL PRIMARY KEY,
    invite_hash TEXT   NOT NULL UNIQUE,
    note        TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    used_by     TEXT,
    used_at     BIGINT
);
