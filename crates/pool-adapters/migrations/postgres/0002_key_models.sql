-- Holds set by an operator (only an operator lifts them), and the models each key was found to serve.
ALTER TABLE upstream_keys ADD COLUMN status_manual INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upstream_keys ADD COLUMN models TEXT;
ALTER TABLE upstream_keys ADD COLUMN models_at BIGINT;
