-- A server that installs from another registry (relay serve
-- --registry-url, registry/upstream.go, docs/registry.md) keeps what it
-- took from it: the newest version of that registry's signed index it has
-- seen, so that it refuses an older one, and each version it downloaded,
-- with its package's blob stored as its own registry's are, so that every
-- replica runs it without asking the registry again.

CREATE TABLE registry_upstream (
    key_id       TEXT PRIMARY KEY, -- the registry's pinned key
    seen_version BIGINT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE registry_mirror (
    package         TEXT NOT NULL,
    version         TEXT NOT NULL,
    registry_key_id TEXT NOT NULL,
    index_json      BYTEA NOT NULL,
    signature       TEXT NOT NULL,
    signer_key_id   TEXT NOT NULL,
    manifest        TEXT NOT NULL,
    capabilities    TEXT NOT NULL,
    blob_sha256     TEXT NOT NULL,
    size            BIGINT NOT NULL,
    yank_reason     TEXT,
    mirrored_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (package, version)
);
