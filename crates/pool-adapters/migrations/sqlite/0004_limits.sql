-- Limits an operator sets (NULL: no limit).
-- Client tokens: requests per minute and per UTC day, tokens per UTC day, requests at once, and the
-- models the token may use (a JSON array of names, an entry ending in `*` matching by prefix; NULL: all).
-- Upstream keys: requests per minute and at once.
ALTER TABLE client_tokens ADD COLUMN rpm BIGINT;
ALTER TABLE client_tokens ADD COLUMN rpd BIGINT;
ALTER TABLE client_tokens ADD COLUMN tpd BIGINT;
ALTER TABLE client_tokens ADD COLUMN max_concurrent BIGINT;
ALTER TABLE client_tokens ADD COLUMN models TEXT;
ALTER TABLE upstream_keys ADD COLUMN rpm BIGINT;
ALTER TABLE upstream_keys ADD COLUMN max_concurrent BIGINT;
