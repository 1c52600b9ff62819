package billing

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/relayhq/relay/core"
)

const invoiceColumns = `id, workspace_id, period, currency, total, created_at`

// Invoices lists the workspace's invoices, the latest month first,
// without their lines.
func (s *Service) Invoices(ctx context.Context, workspaceID string) ([]*Invoice, error) {
	db := s.cfg.DB.DB()
	var out []*Invoice
	err := db.SelectContext(ctx, &out, db.Rebind(`SELECT `+invoiceColumns+` FROM billing_invoices
		WHERE workspace_id = ? ORDER BY period DESC, currency`), workspaceID)
	if err != nil {
		return nil, fmt.Errorf("billing: list invoices: %w", err)
	}
	for _, inv := range out {
		inv.CreatedAt = inv.CreatedAt.UTC()
	}
	return out, nil
}

// Invoice returns one of the workspace's invoices with its lines;
// ENotFound when the workspace has no invoice of that id.
func (s *Service) Invoice(ctx context.Context, workspaceID, id string) (*Invoice, error) {
	db := s.cfg.DB.DB()
	var inv Invoice
	err := db.GetContext(ctx, &inv, db.Rebind(`SELECT `+invoiceColumns+` FROM billing_invoices WHERE workspace_id = ? AND id = ?`), workspaceID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no invoice %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("billing: read invoice: %w", err)
	}
	inv.CreatedAt = inv.CreatedAt.UTC()
	err = db.SelectContext(ctx, &inv.Lines, db.Rebind(`SELECT n, listing, installation, component, quantity, unit_amount, per_units, amount
		FROM billing_invoice_lines WHERE invoice_id = ? ORDER BY n`), id)
	if err != nil {
		return nil, fmt.Errorf("billing: read invoice lines: %w", err)
	}
	if inv.CreditNotes, err = s.creditNotesOf(ctx, id); err != nil {
		return nil, err
	}
	for _, n := range inv.CreditNotes {
		inv.Credited += n.Total
	}
	return &inv, nil
}

// Statements lists the publisher's statements, the latest month first;
// only period's when period is not empty.
func (s *Service) Statements(ctx context.Context, publisher, period string) ([]*Statement, error) {
	if period != "" {
		if _, err := monthOf(period); err != nil {
			return nil, err
		}
	}
	db := s.cfg.DB.DB()
	var rows []struct {
		Statement
		Listings string `db:"listings"`
	}
	err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT publisher, period, currency, gross, credits, fee, net, carried, fee_basis_points, listings, created_at
		FROM billing_statements WHERE publisher = ? AND (? = '' OR period = ?) ORDER BY period DESC, currency`), publisher, period, period)
	if err != nil {
		return nil, fmt.Errorf("billing: list statements: %w", err)
	}
	out := make([]*Statement, len(rows))
	for i, r := range rows {
		st := r.Statement
		st.CreatedAt = st.CreatedAt.UTC()
		if err := json.Unmarshal([]byte(r.Listings), &st.Listings); err != nil {
			return nil, fmt.Errorf("billing: stored statement of %s for %s: %w", st.Publisher, st.Period, err)
		}
		out[i] = &st
	}
	return out, nil
}

// WriteInvoiceCSV writes inv's lines as CSV, a header first: one row per
// line, every amount in minor units of currency.
func WriteInvoiceCSV(w io.Writer, inv *Invoice) error {
	c := csv.NewWriter(w)
	c.Write([]string{"invoice", "period", "currency", "n", "listing", "installation", "component", "quantity", "unit_amount", "per_units", "amount"})
	for _, l := range inv.Lines {
		c.Write([]string{inv.ID, inv.Period, inv.Currency, strconv.Itoa(l.N), l.Listing, l.Installation, l.Component,
			itoa(l.Quantity), itoa(l.UnitAmount), itoa(l.PerUnits), itoa(l.Amount)})
	}
	c.Flush()
	return c.Error()
}

// WriteStatementsCSV writes statements as CSV, a header first: one row
// per statement and listing, then the statement's totals on each. (A
// statement of carried credits alone, with no listing, has no row.)
func WriteStatementsCSV(w io.Writer, statements []*Statement) error {
	c := csv.NewWriter(w)
	c.Write([]string{"publisher", "period", "currency", "listing", "listing_gross", "listing_credits", "gross", "credits", "fee", "net",
		"carried", "fee_basis_points"})
	for _, st := range statements {
		for _, l := range st.Listings {
			c.Write([]string{st.Publisher, st.Period, st.Currency, l.Listing, itoa(l.Gross), itoa(l.Credits), itoa(st.Gross), itoa(st.Credits),
				itoa(st.Fee), itoa(st.Net), itoa(st.Carried), strconv.Itoa(st.FeeBasisPoints)})
		}
	}
	c.Flush()
	return c.Error()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
