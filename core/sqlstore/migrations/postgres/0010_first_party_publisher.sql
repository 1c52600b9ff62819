-- Relay's own publisher, relay, belongs to no workspace: the server
-- publishes its first-party packages under it at start (registry,
-- ImportFirstParty), signed with the registry's own key. Its
-- workspace_id is NULL; every other publisher keeps the workspace whose
-- admin registered it.

ALTER TABLE registry_publishers ALTER COLUMN workspace_id DROP NOT NULL;

-- A start finds the first-party package files it published before by
-- their SHA-256, without reading them again.
CREATE INDEX registry_versions_blob ON registry_versions (blob_sha256);
