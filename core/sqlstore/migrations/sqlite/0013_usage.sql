-- Usage: how many runs succeeded, per workspace, UTC day, and what they
-- ran, kept in the transaction that records each run's end
-- (sqlstore/usage.go), so that no succeeded run is counted twice or
-- missed. Billing (marketplace/billing) prices these counts.
--
-- period is the billing month (YYYY-MM) the runs are billed in: the
-- month of day, unless that month was closed before the runs' ends were
-- written; then the first open month. day is when they finished
-- (YYYY-MM-DD). package is the registry package of the connector that
-- ran ('' for none); template and installation the preset's ('' for a
-- connector's own action); action the run's action id;
-- connector_action the connector's action within its connector.
--
-- No foreign key to workspaces: erasing a workspace deletes its rows.
CREATE TABLE usage_daily (
    workspace_id     TEXT NOT NULL,
    period           TEXT NOT NULL,
    day              TEXT NOT NULL,
    package          TEXT NOT NULL,
    template         TEXT NOT NULL,
    installation     TEXT NOT NULL,
    action           TEXT NOT NULL,
    connector_action TEXT NOT NULL,
    runs             INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, period, day, package, template, installation, action, connector_action)
);

-- A workspace's usage by the days the runs finished (GET /v1/usage).
CREATE INDEX usage_daily_day ON usage_daily (workspace_id, day);

-- open_from is the first billing month not closed: usage is never added
-- to a month before it.
CREATE TABLE billing_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    open_from TEXT NOT NULL
);

INSERT INTO billing_state (id, open_from) VALUES (1, '0000-01');

-- A listing's (a registry package's) price plans: each takes effect at
-- the start (UTC) of its effective_from day (YYYY-MM-DD) and lasts until
-- the next one's. plan is JSON (marketplace/billing).
CREATE TABLE price_plans (
    listing        TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    plan           TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (listing, effective_from)
);
