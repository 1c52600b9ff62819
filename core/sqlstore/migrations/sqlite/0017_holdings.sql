-- Holdings (sqlstore/holdings.go): when each workspace had each listing
-- (a registry package), and through what: a template's installation
-- (holder 'installation:<id>', for the template and every connector
-- package its lock runs) or a connector installed from the registry
-- (holder 'connector:<name>'). A monthly price plan bills a workspace for
-- the days on which it held the listing (marketplace/billing).
-- ended_at is NULL while the workspace holds it.
CREATE TABLE billing_holdings (
    workspace_id TEXT NOT NULL,
    listing      TEXT NOT NULL,
    holder       TEXT NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    ended_at     TIMESTAMP
);

CREATE INDEX billing_holdings_open ON billing_holdings (workspace_id, holder) WHERE ended_at IS NULL;
CREATE INDEX billing_holdings_listing ON billing_holdings (listing, started_at);

-- What is installed now has been held since it was installed.
INSERT INTO billing_holdings (workspace_id, listing, holder, started_at)
SELECT workspace_id, template, 'installation:' || id, installed_at FROM marketplace_installations;

INSERT INTO billing_holdings (workspace_id, listing, holder, started_at)
SELECT DISTINCT i.workspace_id, json_extract(c.value, '$.package'), 'installation:' || i.id, i.installed_at
FROM marketplace_installations i, json_each(i.lock, '$.connectors') c
WHERE NOT COALESCE(json_extract(c.value, '$.builtin'), 0) AND COALESCE(json_extract(c.value, '$.package'), '') <> '';

INSERT INTO billing_holdings (workspace_id, listing, holder, started_at)
SELECT workspace_id, package, 'connector:' || name, installed_at FROM registry_installs;
