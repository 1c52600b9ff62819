-- Keys of the whole server, such as the API key pepper, each wrapped by the
-- master key like a workspace data key, and re-wrapped with those when the
-- master key is rotated.

CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    wrapped    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
