package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// CreditNote corrects an invoice by crediting parts of its lines: a
// document of its own, since an invoice never changes. It reduces the
// statements of the month it is issued in (Period).
type CreditNote struct {
	ID          string       `json:"id" db:"id"`
	InvoiceID   string       `json:"invoice_id" db:"invoice_id"`
	WorkspaceID string       `json:"-" db:"workspace_id"`
	Period      string       `json:"period" db:"period"`
	Currency    string       `json:"currency" db:"currency"`
	Total       int64        `json:"total" db:"total"`
	Reason      string       `json:"reason" db:"reason"`
	CreatedAt   time.Time    `json:"created_at" db:"created_at"`
	Lines       []CreditLine `json:"lines" db:"-"`
}

// CreditLine credits Amount of the invoice's line N.
type CreditLine struct {
	N       int    `json:"n"`
	Listing string `json:"listing"`
	Amount  int64  `json:"amount"`
}

// IssueCreditNote credits amounts (by invoice line number) of an invoice,
// for reason: each amount above zero, and no line credited past its
// amount, all credit notes of the invoice together. It is recorded in the
// invoice's workspace's audit log.
func (s *Service) IssueCreditNote(ctx context.Context, invoiceID string, amounts map[int]int64, reason string) (*CreditNote, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 500 {
		return nil, core.Errorf(core.EInvalid, "a credit note needs a reason, at most 500 characters")
	}
	if len(amounts) == 0 {
		return nil, core.Errorf(core.EInvalid, "a credit note credits at least one invoice line")
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	var note *CreditNote
	err := s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		lock := ""
		if s.cfg.DB.Dialect() == "postgres" {
			lock = " FOR UPDATE" // one credit note of an invoice at a time
		}
		var inv Invoice
		err := tx.GetContext(ctx, &inv, tx.Rebind(`SELECT `+invoiceColumns+` FROM billing_invoices WHERE id = ?`+lock), invoiceID)
		if errors.Is(err, sql.ErrNoRows) {
			return core.Errorf(core.ENotFound, "no invoice %q", invoiceID)
		}
		if err != nil {
			return fmt.Errorf("billing: read invoice: %w", err)
		}
		var lines []creditedLine
		err = tx.SelectContext(ctx, &lines, tx.Rebind(`SELECT l.n, l.listing, l.amount, COALESCE((SELECT SUM(cl.amount)
			FROM billing_credit_note_lines cl JOIN billing_credit_notes c ON c.id = cl.credit_note_id
			WHERE c.invoice_id = l.invoice_id AND cl.n = l.n), 0) AS credited
			FROM billing_invoice_lines l WHERE l.invoice_id = ? ORDER BY l.n`), invoiceID)
		if err != nil {
			return fmt.Errorf("billing: read invoice lines: %w", err)
		}
		note = &CreditNote{ID: core.NewID(), InvoiceID: invoiceID, WorkspaceID: inv.WorkspaceID, Period: now.Format("2006-01"),
			Currency: inv.Currency, Reason: reason, CreatedAt: now}
		for _, n := range slices.Sorted(maps.Keys(amounts)) {
			i := slices.IndexFunc(lines, func(l creditedLine) bool { return l.N == n })
			if i < 0 {
				return core.Errorf(core.EInvalid, "invoice %s has no line %d", invoiceID, n)
			}
			l, a := lines[i], amounts[n]
			if a <= 0 || a > l.Amount-l.Credited {
				return core.Errorf(core.EInvalid, "line %d: credit 1 to %d (its amount %d, credited %d before)", n,
					l.Amount-l.Credited, l.Amount, l.Credited)
			}
			note.Lines = append(note.Lines, CreditLine{N: n, Listing: l.Listing, Amount: a})
			if note.Total, err = addAmount(note.Total, a); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_credit_notes (id, invoice_id, workspace_id, period, currency, total,
			reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), note.ID, note.InvoiceID, note.WorkspaceID, note.Period, note.Currency,
			note.Total, note.Reason, note.CreatedAt)
		if err != nil {
			return fmt.Errorf("billing: insert credit note: %w", err)
		}
		err = insertValues(ctx, tx, `INSERT INTO billing_credit_note_lines (credit_note_id, n, listing, amount) VALUES `, len(note.Lines),
			func(i int) []any { l := note.Lines[i]; return []any{note.ID, l.N, l.Listing, l.Amount} })
		if err != nil {
			return fmt.Errorf("billing: insert credit note lines: %w", err)
		}
		return audit(&core.AuditRecord{WorkspaceID: note.WorkspaceID, Role: "operator", Action: "billing.credit_note.issue",
			Target: "invoice:" + invoiceID, Outcome: "success",
			Details: auditJSON(map[string]any{"credit_note": note.ID, "total": note.Total, "currency": note.Currency, "reason": note.Reason})})
	})
	if err != nil {
		return nil, err
	}
	return note, nil
}

// creditedLine is an invoice line and what credit notes credited of it.
type creditedLine struct {
	N        int    `db:"n"`
	Listing  string `db:"listing"`
	Amount   int64  `db:"amount"`
	Credited int64  `db:"credited"`
}

// creditNotesOf reads an invoice's credit notes, oldest first.
func (s *Service) creditNotesOf(ctx context.Context, invoiceID string) ([]CreditNote, error) {
	db := s.cfg.DB.DB()
	var out []CreditNote
	err := db.SelectContext(ctx, &out, db.Rebind(`SELECT id, invoice_id, workspace_id, period, currency, total, reason, created_at
		FROM billing_credit_notes WHERE invoice_id = ? ORDER BY created_at, id`), invoiceID)
	if err != nil {
		return nil, fmt.Errorf("billing: read credit notes: %w", err)
	}
	for i := range out {
		n := &out[i]
		n.CreatedAt = n.CreatedAt.UTC()
		err := db.SelectContext(ctx, &n.Lines, db.Rebind(`SELECT n, listing, amount FROM billing_credit_note_lines
			WHERE credit_note_id = ? ORDER BY n`), n.ID)
		if err != nil {
			return nil, fmt.Errorf("billing: read credit note lines: %w", err)
		}
	}
	return out, nil
}

// creditsOf sums, inside tx, the credit note lines issued in month by
// publisher, currency and listing, and adds what each publisher's last
// statement before month carried over.
func creditsOf(ctx context.Context, tx *sqlx.Tx, month string) (credits map[stmtKey]map[string]int64, carried map[stmtKey]int64, err error) {
	var rows []struct {
		Listing  string `db:"listing"`
		Currency string `db:"currency"`
		Amount   int64  `db:"amount"`
	}
	err = tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT cl.listing, c.currency, SUM(cl.amount) AS amount
		FROM billing_credit_note_lines cl JOIN billing_credit_notes c ON c.id = cl.credit_note_id
		WHERE c.period = ? GROUP BY cl.listing, c.currency`), month)
	if err != nil {
		return nil, nil, fmt.Errorf("read credits: %w", err)
	}
	credits = map[stmtKey]map[string]int64{}
	for _, r := range rows {
		publisher, _, _ := strings.Cut(r.Listing, "/")
		k := stmtKey{publisher, r.Currency}
		if credits[k] == nil {
			credits[k] = map[string]int64{}
		}
		credits[k][r.Listing] = r.Amount
	}
	var prior []struct {
		Publisher string `db:"publisher"`
		Currency  string `db:"currency"`
		Carried   int64  `db:"carried"`
	}
	err = tx.SelectContext(ctx, &prior, tx.Rebind(`SELECT s.publisher, s.currency, s.carried FROM billing_statements s
		WHERE s.carried > 0 AND s.period = (SELECT MAX(p.period) FROM billing_statements p
			WHERE p.publisher = s.publisher AND p.currency = s.currency AND p.period < ?)`), month)
	if err != nil {
		return nil, nil, fmt.Errorf("read carried credits: %w", err)
	}
	carried = map[stmtKey]int64{}
	for _, p := range prior {
		carried[stmtKey{p.Publisher, p.Currency}] = p.Carried
	}
	return credits, carried, nil
}
