-- The marketplace (marketplace/, docs/marketplace.md). A template is a
-- registry package of kind 'template' (registry/relaypkg): published,
-- signed, versioned and yanked as connectors are, in the registry's
-- tables. A package's kind is fixed by its first version.

ALTER TABLE registry_packages ADD COLUMN kind TEXT NOT NULL DEFAULT 'connector';

-- A run of a preset action (an installed template's) records which
-- installation, template version and connector action it ran, as JSON;
-- NULL for a run of a connector's own action.
ALTER TABLE runs ADD COLUMN preset TEXT;

-- A template version installed into a workspace, under a name its
-- presets' action ids start with (<name>.<preset>). Its lock is the exact
-- template version and every connector version it runs (package digest,
-- artifact digests, signer), the connections it made, and the digest of
-- the permission summary the admin accepted; previous_lock is the lock
-- before the last upgrade, what a rollback restores.
CREATE TABLE marketplace_installations (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    name           TEXT NOT NULL,
    template       TEXT NOT NULL,
    version        TEXT NOT NULL,
    version_range  TEXT NOT NULL DEFAULT '',
    lock           TEXT NOT NULL,
    previous_lock  TEXT,
    created_by     TEXT NOT NULL DEFAULT '',
    installed_at   TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE INDEX marketplace_installations_template ON marketplace_installations (template);

-- How many workspaces have each template installed, kept by installing
-- and uninstalling, so that search sorts by it without counting.
CREATE TABLE marketplace_template_stats (
    template TEXT PRIMARY KEY,
    installs INTEGER NOT NULL DEFAULT 0
);
