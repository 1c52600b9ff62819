-- Which engine instance (one per server process) runs each run, and the
-- instances' heartbeats, so that recovery interrupts only the runs of
-- processes that are gone (docs/execution.md). owner is NULL on runs
-- written before this version: those are treated as having no live owner.

ALTER TABLE runs ADD COLUMN owner TEXT;

CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
