-- The registry (registry/, docs/registry.md): publishers and their
-- signing keys, packages and their immutable versions, the blobs of
-- published packages (in the database on PostgreSQL, so that every
-- replica has them; under the data dir on SQLite), chunked uploads, and
-- the registry's signed index's version counter.

CREATE TABLE registry_publishers (
    name         TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    display_name TEXT NOT NULL DEFAULT '',
    token_id     TEXT NOT NULL UNIQUE,
    token_hash   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE registry_keys (
    publisher  TEXT NOT NULL REFERENCES registry_publishers (name),
    key_id     TEXT NOT NULL,
    public_key TEXT NOT NULL,
    added_at   TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    PRIMARY KEY (publisher, key_id)
);

CREATE TABLE registry_packages (
    name        TEXT PRIMARY KEY,
    publisher   TEXT NOT NULL REFERENCES registry_publishers (name),
    description TEXT NOT NULL DEFAULT '',
    keywords    TEXT NOT NULL DEFAULT '',
    deprecated  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX registry_packages_publisher ON registry_packages (publisher, name);

CREATE TABLE registry_versions (
    package       TEXT NOT NULL REFERENCES registry_packages (name),
    version       TEXT NOT NULL,
    index_json    BYTEA NOT NULL,
    signature     TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    capabilities  TEXT NOT NULL,
    blob_sha256   TEXT NOT NULL,
    size          BIGINT NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL,
    yanked_at     TIMESTAMPTZ,
    yank_reason   TEXT,
    PRIMARY KEY (package, version)
);

CREATE TABLE registry_blobs (
    sha256 TEXT PRIMARY KEY,
    data   BYTEA NOT NULL
);

CREATE TABLE registry_uploads (
    id         TEXT PRIMARY KEY,
    publisher  TEXT NOT NULL REFERENCES registry_publishers (name),
    size       BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE registry_upload_parts (
    upload_id TEXT NOT NULL REFERENCES registry_uploads (id) ON DELETE CASCADE,
    n         INTEGER NOT NULL,
    data      BYTEA NOT NULL,
    PRIMARY KEY (upload_id, n)
);

-- One row: the version of the registry's index, one more at each change.
CREATE TABLE registry_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    index_version BIGINT NOT NULL
);
INSERT INTO registry_state (id, index_version) VALUES (1, 1);
