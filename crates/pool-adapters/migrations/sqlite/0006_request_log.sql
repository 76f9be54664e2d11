-- The request log: one row per client request (see pool_core::reqlog). `id` only grows
-- (AUTOINCREMENT: an id is never reused after the newest rows are pruned), so it is the paging
-- cursor; every filter has an index that ends in `id`, so the first page of any filter reads
-- about one page of index entries, however many rows there are. `attempts` is the list as
-- `x-pool-attempts` prints it; `request_log_keys` indexes it by key. Times are unix ms.
CREATE TABLE request_log (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms             BIGINT  NOT NULL,
    request_id        TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    token_id          TEXT,
    token_name        TEXT,
    status            BIGINT  NOT NULL,
    status_class      BIGINT  NOT NULL,
    outcome           TEXT    NOT NULL,
    latency_ms        BIGINT  NOT NULL,
    prompt_tokens     BIGINT  NOT NULL,
    completion_tokens BIGINT  NOT NULL,
    stream            BIGINT  NOT NULL,
    attempts          TEXT    NOT NULL
);
CREATE INDEX request_log_at ON request_log (at_ms);
CREATE INDEX request_log_request_id ON request_log (request_id, id);
CREATE INDEX request_log_status ON request_log (status, id);
CREATE INDEX request_log_status_class ON request_log (status_class, id);
CREATE INDEX request_log_outcome ON request_log (outcome, id);
CREATE INDEX request_log_model ON request_log (model, id);
CREATE INDEX request_log_token ON request_log (token_id, id);

-- Every key a request tried, for the key filter (a key is tried at most once per request).
CREATE TABLE request_log_keys (
    key_id TEXT   NOT NULL,
    log_id BIGINT NOT NULL,
    PRIMARY KEY (key_id, log_id)
) WITHOUT ROWID;
CREATE INDEX request_log_keys_log ON request_log_keys (log_id);
