-- Closed billing months (marketplace/billing, docs/billing.md): a month
-- is closed once, by whichever close gets here first, at the platform fee
-- (basis points) of that close.
CREATE TABLE billing_periods (
    period           TEXT PRIMARY KEY,
    closed_at        TIMESTAMP NOT NULL,
    fee_basis_points INTEGER NOT NULL
);

-- What a workspace owes for a closed month, in one currency, and its
-- lines (one component of one listing's price for one installation).
-- Neither ever changes once written. Amounts are minor units.
CREATE TABLE billing_invoices (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    total        INTEGER NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, period, currency)
);

CREATE TABLE billing_invoice_lines (
    invoice_id   TEXT NOT NULL REFERENCES billing_invoices (id),
    n            INTEGER NOT NULL,
    listing      TEXT NOT NULL,
    installation TEXT NOT NULL,
    component    TEXT NOT NULL,
    quantity     INTEGER NOT NULL,
    unit_amount  INTEGER NOT NULL,
    per_units    INTEGER NOT NULL,
    amount       INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, n)
);

-- What a publisher earned in a closed month, in one currency: gross, the
-- platform's fee and net (fee + net = gross); listings is the gross by
-- listing, as JSON.
CREATE TABLE billing_statements (
    publisher        TEXT NOT NULL,
    period           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    gross            INTEGER NOT NULL,
    fee              INTEGER NOT NULL,
    net              INTEGER NOT NULL,
    fee_basis_points INTEGER NOT NULL,
    listings         TEXT NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (publisher, period, currency)
);
