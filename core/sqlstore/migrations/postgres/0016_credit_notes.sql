-- Credit notes (docs/billing.md): a correction of an invoice, which never
-- changes. period is the month the credit note was issued in, whose
-- statements it reduces. Each line credits part of an invoice line (n);
-- what an invoice line's credits add up to never passes its amount.
CREATE TABLE billing_credit_notes (
    id           TEXT PRIMARY KEY,
    invoice_id   TEXT NOT NULL REFERENCES billing_invoices (id),
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    total        BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX billing_credit_notes_invoice ON billing_credit_notes (invoice_id);
CREATE INDEX billing_credit_notes_period ON billing_credit_notes (period);

CREATE TABLE billing_credit_note_lines (
    credit_note_id TEXT NOT NULL REFERENCES billing_credit_notes (id),
    n              INTEGER NOT NULL,
    listing        TEXT NOT NULL,
    amount         BIGINT NOT NULL,
    PRIMARY KEY (credit_note_id, n)
);

-- What a statement's month owed back to earlier credits: credits past
-- its gross carry into the next month's statement.
ALTER TABLE billing_statements ADD COLUMN credits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_statements ADD COLUMN carried BIGINT NOT NULL DEFAULT 0;
