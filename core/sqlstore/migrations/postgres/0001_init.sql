CREATE TABLE workspaces (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    rate_limit_rate  INTEGER,
    rate_limit_burst INTEGER,
    created_at       TIMESTAMPTZ NOT NULL,
    -- A quota is whole or absent: half of one has no meaning.
    CHECK ((rate_limit_rate IS NULL) = (rate_limit_burst IS NULL))
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    revoked_at   TIMESTAMPTZ
);

-- Serves ListKeys: the workspace's keys in id (creation) order.
CREATE INDEX api_keys_workspace_id_id ON api_keys (workspace_id, id);
