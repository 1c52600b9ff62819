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
	"time"

	"github.com/relayhq/relay/core"
)

const invoiceColumns = `id, workspace_id, period, currency, total, created_at`

type invoiceRow struct {
	ID          string    `db:"id"`
	WorkspaceID string    `db:"workspace_id"`
	Period      string    `db:"period"`
	Currency    string    `db:"currency"`
	Total       int64     `db:"total"`
	CreatedAt   time.Time `db:"created_at"`
}

func (r invoiceRow) invoice() *Invoice {
	return &Invoice{ID: r.ID, WorkspaceID: r.WorkspaceID, Period: r.Period, Currency: r.Currency, Total: r.Total, CreatedAt: r.CreatedAt.UTC()}
}

// Invoices lists the workspace's invoices, the latest month first,
// without their lines.
func (s *Service) Invoices(ctx context.Context, workspaceID string) ([]*Invoice, error) {
	db := s.cfg.DB.DB()
	var rows []invoiceRow
	err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT `+invoiceColumns+` FROM billing_invoices
		WHERE workspace_id = ? ORDER BY period DESC, currency`), workspaceID)
	if err != nil {
		return nil, fmt.Errorf("billing: list invoices: %w", err)
	}
	out := make([]*Invoice, len(rows))
	for i, r := range rows {
		out[i] = r.invoice()
	}
	return out, nil
}

// Invoice returns one of the workspace's invoices with its lines;
// ENotFound when the workspace has no invoice of that id.
func (s *Service) Invoice(ctx context.Context, workspaceID, id string) (*Invoice, error) {
	db := s.cfg.DB.DB()
	var r invoiceRow
	err := db.GetContext(ctx, &r, db.Rebind(`SELECT `+invoiceColumns+` FROM billing_invoices WHERE workspace_id = ? AND id = ?`), workspaceID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no invoice %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("billing: read invoice: %w", err)
	}
	inv := r.invoice()
	var lines []struct {
		N            int    `db:"n"`
		Listing      string `db:"listing"`
		Installation string `db:"installation"`
		Component    string `db:"component"`
		Quantity     int64  `db:"quantity"`
		UnitAmount   int64  `db:"unit_amount"`
		PerUnits     int64  `db:"per_units"`
		Amount       int64  `db:"amount"`
	}
	err = db.SelectContext(ctx, &lines, db.Rebind(`SELECT n, listing, installation, component, quantity, unit_amount, per_units, amount
		FROM billing_invoice_lines WHERE invoice_id = ? ORDER BY n`), id)
	if err != nil {
		return nil, fmt.Errorf("billing: read invoice lines: %w", err)
	}
	for _, l := range lines {
		inv.Lines = append(inv.Lines, InvoiceLine{N: l.N, Listing: l.Listing, Line: Line{Installation: l.Installation,
			Component: l.Component, Quantity: l.Quantity, UnitAmount: l.UnitAmount, PerUnits: l.PerUnits, Amount: l.Amount}})
	}
	if inv.CreditNotes, err = s.creditNotesOf(ctx, id); err != nil {
		return nil, err
	}
	for _, n := range inv.CreditNotes {
		inv.Credited += n.Total
	}
	return inv, nil
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
		Publisher      string    `db:"publisher"`
		Period         string    `db:"period"`
		Currency       string    `db:"currency"`
		Gross          int64     `db:"gross"`
		Credits        int64     `db:"credits"`
		Fee            int64     `db:"fee"`
		Net            int64     `db:"net"`
		Carried        int64     `db:"carried"`
		FeeBasisPoints int       `db:"fee_basis_points"`
		Listings       string    `db:"listings"`
		CreatedAt      time.Time `db:"created_at"`
	}
	err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT publisher, period, currency, gross, credits, fee, net, carried, fee_basis_points, listings, created_at
		FROM billing_statements WHERE publisher = ? AND (? = '' OR period = ?) ORDER BY period DESC, currency`), publisher, period, period)
	if err != nil {
		return nil, fmt.Errorf("billing: list statements: %w", err)
	}
	out := make([]*Statement, len(rows))
	for i, r := range rows {
		st := &Statement{Publisher: r.Publisher, Period: r.Period, Currency: r.Currency, Gross: r.Gross, Credits: r.Credits, Fee: r.Fee,
			Net: r.Net, Carried: r.Carried, FeeBasisPoints: r.FeeBasisPoints, CreatedAt: r.CreatedAt.UTC()}
		if err := json.Unmarshal([]byte(r.Listings), &st.Listings); err != nil {
			return nil, fmt.Errorf("billing: stored statement of %s for %s: %w", r.Publisher, r.Period, err)
		}
		out[i] = st
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
