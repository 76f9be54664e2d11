-- A hold's cause (who or what put the key out) and whether it ends half-open, as one code:
-- 1 an operator, 2 a rate limit or quota, 3 rejected by the upstream, 4 a run of errors, plus 8
-- when the key must pass a probe before it serves again. 0 is a hold written before causes
-- were kept: its cause is read from its status. A key's strikes (holds in a row without a
-- success, the exponent of its backoff) replace the consecutive-failure counter.
ALTER TABLE upstream_keys RENAME COLUMN status_manual TO status_cause;
ALTER TABLE upstream_keys RENAME COLUMN consecutive_failures TO strikes;
