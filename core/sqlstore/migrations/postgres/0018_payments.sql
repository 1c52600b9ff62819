-- Payments (marketplace/billing/payments, docs/billing.md#stripe): what a
-- payment provider (Stripe) was sent and said back.

-- A workspace's customer at the provider, and its standing: past_due
-- from the first failed payment until its invoices are paid; runs of
-- priced listings are refused when it has been past due longer than the
-- grace period (marketplace/billing).
CREATE TABLE billing_accounts (
    workspace_id   TEXT PRIMARY KEY,
    customer       TEXT NOT NULL,
    past_due_since TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- A Relay invoice at the provider: its invoice there (set once created),
-- and where it stands: draft (lines being added), open (finalized,
-- being collected), paid, payment_failed, void.
CREATE TABLE billing_invoice_payments (
    invoice_id       TEXT PRIMARY KEY REFERENCES billing_invoices (id),
    workspace_id     TEXT NOT NULL,
    provider_invoice TEXT NOT NULL,
    status           TEXT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX billing_invoice_payments_provider ON billing_invoice_payments (provider_invoice);

-- Where a publisher is paid: its connected account at the provider.
CREATE TABLE billing_payout_accounts (
    publisher  TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- A statement's net paid to its publisher: one transfer each.
CREATE TABLE billing_payouts (
    publisher  TEXT NOT NULL,
    period     TEXT NOT NULL,
    currency   TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    transfer   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (publisher, period, currency)
);

-- The provider's events already handled: a redelivery changes nothing.
CREATE TABLE billing_provider_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);
