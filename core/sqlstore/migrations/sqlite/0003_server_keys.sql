-- Keys of the whole server, such as the API key pepper, each wrapped by the
-- master key like a workspace data key, and re-wrapped with those when the
-- master key is rotated.

CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
