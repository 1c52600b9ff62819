-- Times are TIMESTAMP so that the driver parses them back into time.Time;
-- the store writes them as UTC text ("2006-01-02 15:04:05.999999-07:00"
-- form), which sorts chronologically.

CREATE TABLE workspaces (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    rate_limit_rate  INTEGER,
    rate_limit_burst INTEGER,
    created_at       TIMESTAMP NOT NULL,
    -- A quota is whole or absent: half of one has no meaning.
    CHECK ((rate_limit_rate IS NULL) = (rate_limit_burst IS NULL))
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    revoked_at   TIMESTAMP
);

-- Serves ListKeys: the workspace's keys in id (creation) order.
CREATE INDEX api_keys_workspace_id_id ON api_keys (workspace_id, id);
