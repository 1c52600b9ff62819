-- Connectors installed from the registry into a workspace (registry/,
-- docs/registry.md). A connection and a run name such a connector's
-- package (publisher/name), which is what the server runs; NULL for the
-- server's own connectors (its connectors dir), which go by their name.

ALTER TABLE connections ADD COLUMN package TEXT;
ALTER TABLE runs ADD COLUMN package TEXT;

-- Each workspace's lock: the exact version of each installed connector,
-- the digest of every artifact its package carries (every platform's, not
-- just this machine's), who signed it, the capabilities that were
-- accepted, and the entry before the last upgrade, for a rollback.
CREATE TABLE registry_installs (
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    name           TEXT NOT NULL,
    package        TEXT NOT NULL,
    version        TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    artifacts      TEXT NOT NULL,
    signer_key_id  TEXT NOT NULL,
    capabilities   TEXT NOT NULL,
    previous       TEXT,
    installed_at   TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, name),
    UNIQUE (workspace_id, package)
);
