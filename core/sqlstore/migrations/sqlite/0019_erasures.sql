-- Erasures (sqlstore/erase.go): the operator's record of each workspace
-- erased at its admin's request. The workspace's rows are gone; this
-- keeps who asked and when, and where its audit chain ended, so that the
-- erasure itself is on record. It names the workspace by id only.
CREATE TABLE workspace_erasures (
    workspace_id TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    audit_seq    INTEGER NOT NULL,
    audit_hash   TEXT NOT NULL,
    erased_at    TIMESTAMP NOT NULL
);
