-- Async runs are a durable queue (docs/execution.md): a queued run waits
-- for an engine to take it, and one whose server died before its call
-- began is taken over by another. attempt counts the times a run was
-- started; retry_of links a retry to the run it runs again (at most one
-- retry each); connector_key is the idempotency key the connector gets,
-- derived, never the caller's own; input holds the exact params sealed
-- with the workspace's data key when the stored params are redacted.

ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN retry_of TEXT;
ALTER TABLE runs ADD COLUMN connector_key TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN input BYTEA;

CREATE UNIQUE INDEX runs_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL;
