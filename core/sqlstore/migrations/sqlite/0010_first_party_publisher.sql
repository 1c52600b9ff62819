-- Relay's own publisher, relay, belongs to no workspace: the server
-- publishes its first-party packages under it at start (registry,
-- ImportFirstParty), signed with the registry's own key. Its
-- workspace_id is NULL; every other publisher keeps the workspace whose
-- admin registered it.
--
-- SQLite cannot drop a NOT NULL in place, so the table is made again.
-- Foreign keys cannot be turned off inside the migration's transaction;
-- they are deferred instead: dropping the table leaves registry_keys,
-- registry_packages and registry_uploads pointing at nothing until the
-- rows are back, and the commit checks that they all are.

PRAGMA defer_foreign_keys = ON;

CREATE TABLE registry_publishers_0010 AS SELECT * FROM registry_publishers;
DROP TABLE registry_publishers;

CREATE TABLE registry_publishers (
    name         TEXT PRIMARY KEY,
    workspace_id TEXT REFERENCES workspaces (id),
    display_name TEXT NOT NULL DEFAULT '',
    token_id     TEXT NOT NULL UNIQUE,
    token_hash   BLOB NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    skeleton     TEXT
);
INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at, skeleton)
    SELECT name, workspace_id, display_name, token_id, token_hash, created_at, skeleton FROM registry_publishers_0010;
DROP TABLE registry_publishers_0010;

CREATE UNIQUE INDEX registry_publishers_skeleton ON registry_publishers (skeleton);

-- A start finds the first-party package files it published before by
-- their SHA-256, without reading them again.
CREATE INDEX registry_versions_blob ON registry_versions (blob_sha256);
