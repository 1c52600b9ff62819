-- Budgets (marketplace/billing/budget.go, docs/billing.md): a monthly
-- spend cap of a workspace (scope 'workspace') or of one of its
-- installations (scope: the installation's id), soft (alerts only) or
-- hard (refuses runs past it).
CREATE TABLE billing_budgets (
    workspace_id TEXT NOT NULL,
    scope        TEXT NOT NULL,
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    hard         BOOLEAN NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, scope)
);

-- A run admitted under a budget, counted in the spend while it is
-- unfinished (and for a minute before it is stored), under what it will
-- be counted as in usage_daily if it succeeds.
CREATE TABLE billing_reservations (
    run_id           TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    period           TEXT NOT NULL,
    day              TEXT NOT NULL,
    package          TEXT NOT NULL,
    template         TEXT NOT NULL,
    installation     TEXT NOT NULL,
    action           TEXT NOT NULL,
    connector_action TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX billing_reservations_workspace ON billing_reservations (workspace_id, period);

-- A budget's spend reaching 80% or 100% of it in a month: once each.
CREATE TABLE billing_alerts (
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    threshold    INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    spend        BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, period, scope, threshold)
);

-- Where a workspace's alerts are posted, and the secret (sealed with the
-- workspace's data key) that signs each post.
CREATE TABLE billing_alert_hooks (
    workspace_id TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
