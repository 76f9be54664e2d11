-- Statistics rollups. Every write adds (events = events + n), so several gateways can flush into
-- one database. `kind` is 'request' or 'attempt'; `key_id` and `token_id` are '' when none;
-- `status` is 0 when no answer came. Sums (latency_ms, ttfb_ms, overhead_us) give means.

-- Per minute, every dimension; kept 48 hours by default.
CREATE TABLE stats_minute (
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    events BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    partial BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT NOT NULL,
    overhead_us BIGINT NOT NULL,
    PRIMARY KEY (bucket, kind, provider, model, key_id, token_id, status, outcome)
);
CREATE INDEX stats_minute_token ON stats_minute (token_id, bucket);
CREATE INDEX stats_minute_key ON stats_minute (key_id, bucket);
CREATE INDEX stats_minute_model ON stats_minute (model, bucket);

-- Per hour, every dimension; kept 90 days by default.
CREATE TABLE stats_hour (
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    events BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    partial BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT NOT NULL,
    overhead_us BIGINT NOT NULL,
    PRIMARY KEY (bucket, kind, provider, model, key_id, token_id, status, outcome)
);
CREATE INDEX stats_hour_token ON stats_hour (token_id, bucket);
CREATE INDEX stats_hour_key ON stats_hour (key_id, bucket);
CREATE INDEX stats_hour_model ON stats_hour (model, bucket);

-- Per hour without key and token: what dashboards read (a few rows per hour).
CREATE TABLE stats_hour_summary (
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    events BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    partial BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT NOT NULL,
    overhead_us BIGINT NOT NULL,
    PRIMARY KEY (bucket, kind, provider, model, key_id, token_id, status, outcome)
);

-- All time, without key and token (bucket 0); never pruned.
CREATE TABLE stats_total (
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    events BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    partial BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT NOT NULL,
    overhead_us BIGINT NOT NULL,
    PRIMARY KEY (bucket, kind, provider, model, key_id, token_id, status, outcome)
);
