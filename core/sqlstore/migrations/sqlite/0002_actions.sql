-- Connections, their sealed secrets, data keys, runs, idempotency records,
-- confirm tokens and the audit log. JSON is TEXT: it reads well in the
-- sqlite3 shell, and the audit hash needs the exact bytes back.

CREATE TABLE connections (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    name               TEXT NOT NULL,
    connector          TEXT NOT NULL,
    version_constraint TEXT NOT NULL DEFAULT '',
    version            TEXT NOT NULL,
    runtime            TEXT NOT NULL,
    config             TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    created_by         TEXT NOT NULL DEFAULT '',
    UNIQUE (workspace_id, name),
    -- The target of connection_secrets' foreign key, which ties a secret
    -- to a connection of its own workspace.
    UNIQUE (workspace_id, id)
);

-- Serves ConnectionsOf.
CREATE INDEX connections_workspace_id_connector ON connections (workspace_id, connector);

CREATE TABLE connection_secrets (
    workspace_id  TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    field         TEXT NOT NULL,
    ciphertext    BLOB NOT NULL,
    PRIMARY KEY (connection_id, field),
    FOREIGN KEY (workspace_id, connection_id) REFERENCES connections (workspace_id, id) ON DELETE CASCADE
);

CREATE TABLE workspace_data_keys (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id),
    wrapped      BLOB NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

-- A run outlives its connection (runs are the history), so connection_id
-- is no foreign key. error_* are all NULL unless the run failed.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    action          TEXT NOT NULL,
    connector       TEXT NOT NULL,
    version         TEXT NOT NULL,
    runtime         TEXT NOT NULL,
    connection_id   TEXT NOT NULL,
    connection_name TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    params          TEXT,
    output          TEXT,
    error_code      TEXT,
    error_message   TEXT,
    error_retryable BOOLEAN,
    created_at      TIMESTAMP NOT NULL,
    started_at      TIMESTAMP,
    finished_at     TIMESTAMP
);

-- Serve ListRuns, newest first, unfiltered or filtered by action or status.
CREATE INDEX runs_workspace_id_id ON runs (workspace_id, id);
CREATE INDEX runs_workspace_id_status ON runs (workspace_id, status, id);
CREATE INDEX runs_workspace_id_action ON runs (workspace_id, action, id);
-- Serves InterruptRuns at start-up without reading the whole history.
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');

-- run_id is no foreign key: the record is claimed before its run is
-- written, in the same transaction.
CREATE TABLE idempotency_records (
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    key             TEXT NOT NULL,
    request_hash    BLOB NOT NULL,
    run_id          TEXT NOT NULL,
    done            BOOLEAN NOT NULL,
    response_status INTEGER NOT NULL DEFAULT 0,
    response_body   BLOB,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, key)
);

CREATE INDEX idempotency_records_expires_at ON idempotency_records (expires_at);

CREATE TABLE confirm_tokens (
    token_hash    BLOB PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    action        TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    used_at       TIMESTAMP
);

CREATE INDEX confirm_tokens_expires_at ON confirm_tokens (expires_at);

-- prev_hash is NULL for a workspace's first record.
CREATE TABLE audit_records (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    time         TIMESTAMP NOT NULL,
    key_id       TEXT NOT NULL,
    role         TEXT NOT NULL,
    ip           TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    details      TEXT,
    prev_hash    BLOB,
    hash         BLOB NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
