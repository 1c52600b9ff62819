package billing

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
)

// DefaultFeeBasisPoints is the platform's share of a publisher's gross
// when the operator sets none: 20%.
const DefaultFeeBasisPoints = 2000

// Invoice is what a workspace owes for a billing month in one currency.
// It never changes once made.
type Invoice struct {
	ID          string        `json:"id" db:"id"`
	WorkspaceID string        `json:"-" db:"workspace_id"`
	Period      string        `json:"period" db:"period"`
	Currency    string        `json:"currency" db:"currency"`
	Total       int64         `json:"total" db:"total"`
	CreatedAt   time.Time     `json:"created_at" db:"created_at"`
	Lines       []InvoiceLine `json:"lines,omitempty" db:"-"`
	// CreditNotes are the corrections of the invoice, and Credited what
	// they come to (with the lines only).
	CreditNotes []CreditNote `json:"credit_notes,omitempty" db:"-"`
	Credited    int64        `json:"credited,omitempty" db:"-"`
}

// InvoiceLine is a line of an invoice: one component of one listing's
// price, for one installation ("" for a connector's own actions). N is
// its place on the invoice, from 1; the invoice's id and N name it.
type InvoiceLine struct {
	N       int    `json:"n" db:"n"`
	Listing string `json:"listing" db:"listing"`
	Line
}

// Statement is what a publisher earned in a billing month in one
// currency: the gross of its listings' invoice lines, less the credits
// (credit notes issued in the month on its listings' lines, and what the
// last statement carried over), split into the platform's fee
// (FeeBasisPoints of it, rounded half away from zero) and the rest, net.
// Credits past the gross are carried into the next month's statement, so
// nothing is negative: Fee + Net = Gross - Credits when Carried is 0,
// and Fee = Net = 0, Carried = Credits - Gross otherwise.
type Statement struct {
	Publisher      string    `json:"publisher" db:"publisher"`
	Period         string    `json:"period" db:"period"`
	Currency       string    `json:"currency" db:"currency"`
	Gross          int64     `json:"gross" db:"gross"`
	Credits        int64     `json:"credits" db:"credits"`
	Fee            int64     `json:"fee" db:"fee"`
	Net            int64     `json:"net" db:"net"`
	Carried        int64     `json:"carried" db:"carried"`
	FeeBasisPoints int       `json:"fee_basis_points" db:"fee_basis_points"`
	CreatedAt      time.Time `json:"created_at" db:"created_at"`
	// Listings are the gross and the credits by listing (kept as JSON).
	Listings []StatementListing `json:"listings" db:"-"`
}

// StatementListing is one listing's part of a statement.
type StatementListing struct {
	Listing string `json:"listing"`
	Gross   int64  `json:"gross"`
	Credits int64  `json:"credits,omitempty"`
}

// CloseResult says what closing a month did.
type CloseResult struct {
	Period string `json:"period"`
	// Closed is false when the month had been closed before: nothing was
	// made again.
	Closed     bool `json:"closed"`
	Invoices   int  `json:"invoices"`
	Statements int  `json:"statements"`
}

// splitFee is gross's fee at basis points bp (rounded half away from
// zero) and the rest: fee + net = gross, both at least 0, for gross ≥ 0
// and 0 ≤ bp ≤ 10000.
func splitFee(gross int64, bp int) (fee, net int64, err error) {
	if gross < 0 || bp < 0 || bp > 10000 {
		return 0, 0, fmt.Errorf("billing: fee of %d at %d basis points", gross, bp)
	}
	if fee, err = mulDivRound(gross, int64(bp), 10000); err != nil {
		return 0, 0, err
	}
	return fee, gross - fee, nil
}

// ParseFeePercent reads a platform fee percentage with at most two
// decimals ("20", "12.5") as basis points.
func ParseFeePercent(s string) (int, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || len(whole) > 3 || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("platform fee %q: want a percentage from 0 to 100, at most two decimals", s)
	}
	bp := 0
	for _, c := range whole {
		bp = bp*10 + int(c-'0')
	}
	bp *= 100
	frac += strings.Repeat("0", 2-len(frac))
	bp += int(frac[0]-'0')*10 + int(frac[1]-'0')
	if bp > 10000 {
		return 0, fmt.Errorf("platform fee %q: more than 100%%", s)
	}
	return bp, nil
}

// monthOf parses a billing month, YYYY-MM.
func monthOf(period string) (time.Time, error) {
	t, err := time.Parse("2006-01", period)
	if err != nil {
		return time.Time{}, core.Errorf(core.EInvalid, "period %q: want a month, YYYY-MM", period)
	}
	return t, nil
}

// Close closes the billing month period and every earlier month not yet
// closed, oldest first: their usage is final (a run that ends after this
// counts in a later month), and each month's usage becomes immutable
// invoices, one per workspace and currency, with a line per listing,
// installation and price component, and statements, one per publisher
// and currency, at feeBP basis points. A month closed before is left as it
// is. Only a month that has ended may be closed.
func (s *Service) Close(ctx context.Context, period string, feeBP int) ([]CloseResult, error) {
	month, err := monthOf(period)
	if err != nil {
		return nil, err
	}
	if end := month.AddDate(0, 1, 0); s.cfg.Now().Before(end) {
		return nil, core.Errorf(core.EInvalid, "%s has not ended: it can be closed from %s", period, end.Format(time.DateOnly))
	}
	if feeBP < 0 || feeBP > 10000 {
		return nil, core.Errorf(core.EInvalid, "a platform fee is 0 to 10000 basis points")
	}
	if _, err := s.cfg.DB.CloseUsagePeriod(ctx, period); err != nil {
		return nil, err
	}
	db := s.cfg.DB.DB()
	// The months with usage that no close has made invoices for, and
	// period itself.
	var months []string
	err = db.SelectContext(ctx, &months, db.Rebind(`SELECT DISTINCT period FROM usage_daily
		WHERE period <= ? AND period NOT IN (SELECT period FROM billing_periods) ORDER BY period`), period)
	if err != nil {
		return nil, fmt.Errorf("billing: months to close: %w", err)
	}
	if !slices.Contains(months, period) {
		months = append(months, period)
	}
	out := make([]CloseResult, 0, len(months))
	for _, m := range months {
		r, err := s.closeMonth(ctx, m, feeBP)
		if err != nil {
			return out, fmt.Errorf("billing: close %s: %w", m, err)
		}
		out = append(out, *r)
	}
	return out, nil
}

// closeMonth makes month's invoices and statements in one transaction,
// which first records the month as closed: a second close, on any
// replica, finds it so and makes nothing.
func (s *Service) closeMonth(ctx context.Context, month string, feeBP int) (*CloseResult, error) {
	plans, err := s.plansFor(ctx, month)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	var res *CloseResult
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
		res = &CloseResult{Period: month}
		r, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_periods (period, closed_at, fee_basis_points) VALUES (?, ?, ?)
			ON CONFLICT (period) DO NOTHING`), month, now, feeBP)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return err // closed before
		}
		res.Closed = true
		var invoices []*Invoice
		if len(plans) > 0 {
			if invoices, err = s.rateMonth(ctx, tx, month, plans, now); err != nil {
				return err
			}
		}
		credits, carried, err := creditsOf(ctx, tx, month)
		if err != nil {
			return err
		}
		statements, err := statementsOf(invoices, credits, carried, month, feeBP, now)
		if err != nil {
			return err
		}
		res.Invoices, res.Statements = len(invoices), len(statements)
		if err := insertInvoices(ctx, tx, invoices); err != nil {
			return err
		}
		return insertStatements(ctx, tx, statements)
	})
	return res, err
}

// plansFor returns the plans in effect in month of the listings that
// have one that is not free.
func (s *Service) plansFor(ctx context.Context, month string) (map[string]*Plan, error) {
	db := s.cfg.DB.DB()
	var rows []struct {
		Listing string `db:"listing"`
		Plan    string `db:"plan"`
	}
	err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT p.listing, p.plan FROM price_plans p
		WHERE p.effective_from = (SELECT MAX(q.effective_from) FROM price_plans q WHERE q.listing = p.listing AND q.effective_from <= ?)`),
		month+"-01")
	if err != nil {
		return nil, fmt.Errorf("billing: plans of %s: %w", month, err)
	}
	plans := map[string]*Plan{}
	for _, r := range rows {
		var p Plan
		if err := json.Unmarshal([]byte(r.Plan), &p); err != nil {
			return nil, fmt.Errorf("billing: stored plan of %s: %w", r.Listing, err)
		}
		if p.Kind != Free {
			plans[r.Listing] = &p
		}
	}
	return plans, nil
}

// rateMonth prices month's usage with plans, and the days each workspace
// held a listing with a monthly plan: an invoice per workspace and
// currency that owes anything, or has a line (a free allowance used).
func (s *Service) rateMonth(ctx context.Context, tx *sqlx.Tx, month string, plans map[string]*Plan, now time.Time) ([]*Invoice, error) {
	start, err := monthOf(month)
	if err != nil {
		return nil, err
	}
	end := start.AddDate(0, 1, 0)
	var monthly []string
	for listing, p := range plans {
		if p.Kind == Monthly {
			monthly = append(monthly, listing)
		}
	}
	held, err := sqlstore.HeldDays(ctx, tx, monthly, start, end)
	if err != nil {
		return nil, err
	}
	daysInMonth := int(end.Sub(start).Hours() / 24)
	rows, err := tx.QueryxContext(ctx, tx.Rebind(`SELECT workspace_id, day, package, template, installation, action, connector_action, runs
		FROM usage_daily WHERE period = ? ORDER BY workspace_id`), month)
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	defer rows.Close()
	var invoices []*Invoice
	workspace := ""
	var mine []meterRow // the workspace's
	flush := func() error {
		usage := byListing(mine, plans)
		for listing, days := range held[workspace] {
			if usage[listing] == nil {
				usage[listing] = &Usage{}
			}
			usage[listing].ActiveDays = map[string]int{"": days}
			usage[listing].DaysInPeriod = daysInMonth
		}
		delete(held, workspace)
		inv, err := invoicesOf(workspace, month, plans, usage, now)
		invoices = append(invoices, inv...)
		mine = mine[:0]
		return err
	}
	for rows.Next() {
		var r struct {
			Workspace string `db:"workspace_id"`
			meterRow
		}
		if err := rows.StructScan(&r); err != nil {
			return nil, err
		}
		if r.Workspace != workspace {
			if err := flush(); err != nil {
				return nil, err
			}
			workspace = r.Workspace
		}
		mine = append(mine, r.meterRow)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	// The workspaces that held a monthly listing and ran nothing priced.
	for _, ws := range slices.Sorted(maps.Keys(held)) {
		workspace = ws
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return invoices, nil
}

// invoicesOf prices one workspace's usage of each listing into its
// invoices, one per currency, lines by listing, installation and
// component.
func invoicesOf(workspace, month string, plans map[string]*Plan, usage map[string]*Usage, now time.Time) ([]*Invoice, error) {
	byCurrency := map[string]*Invoice{}
	for _, listing := range slices.Sorted(maps.Keys(usage)) {
		p := plans[listing]
		lines, _, err := Rate(p, *usage[listing])
		if err != nil {
			return nil, fmt.Errorf("%s's usage of %s: %w", workspace, listing, err)
		}
		if len(lines) == 0 {
			continue
		}
		inv := byCurrency[p.Currency]
		if inv == nil {
			inv = &Invoice{ID: core.NewID(), WorkspaceID: workspace, Period: month, Currency: p.Currency, CreatedAt: now}
			byCurrency[p.Currency] = inv
		}
		for _, l := range lines {
			inv.Lines = append(inv.Lines, InvoiceLine{N: len(inv.Lines) + 1, Listing: listing, Line: l})
			if inv.Total, err = addAmount(inv.Total, l.Amount); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*Invoice, 0, len(byCurrency))
	for _, c := range slices.Sorted(maps.Keys(byCurrency)) {
		out = append(out, byCurrency[c])
	}
	return out, nil
}

// stmtKey names a statement of a month: a publisher and a currency.
type stmtKey struct{ publisher, currency string }

// statementsOf sums invoices' lines by publisher (a listing's first part)
// and currency into statements, less credits (by listing) and what the
// last statements carried.
func statementsOf(invoices []*Invoice, credits map[stmtKey]map[string]int64, carried map[stmtKey]int64, month string, feeBP int,
	now time.Time) ([]*Statement, error) {
	type listingSums struct{ gross, credits int64 }
	sums := map[stmtKey]map[string]*listingSums{}
	at := func(k stmtKey, listing string) *listingSums {
		if sums[k] == nil {
			sums[k] = map[string]*listingSums{}
		}
		if sums[k][listing] == nil {
			sums[k][listing] = &listingSums{}
		}
		return sums[k][listing]
	}
	for _, inv := range invoices {
		for _, l := range inv.Lines {
			publisher, _, _ := strings.Cut(l.Listing, "/")
			ls := at(stmtKey{publisher, inv.Currency}, l.Listing)
			var err error
			if ls.gross, err = addAmount(ls.gross, l.Amount); err != nil {
				return nil, err
			}
		}
	}
	for k, byListing := range credits {
		for listing, amount := range byListing {
			at(k, listing).credits += amount
		}
	}
	for k := range carried {
		if sums[k] == nil {
			sums[k] = map[string]*listingSums{}
		}
	}
	var out []*Statement
	for k, listings := range sums {
		st := &Statement{Publisher: k.publisher, Period: month, Currency: k.currency, FeeBasisPoints: feeBP, CreatedAt: now,
			Credits: carried[k], Listings: []StatementListing{}}
		for _, name := range slices.Sorted(maps.Keys(listings)) {
			ls := listings[name]
			st.Listings = append(st.Listings, StatementListing{Listing: name, Gross: ls.gross, Credits: ls.credits})
			var err error
			if st.Gross, err = addAmount(st.Gross, ls.gross); err != nil {
				return nil, err
			}
			if st.Credits, err = addAmount(st.Credits, ls.credits); err != nil {
				return nil, err
			}
		}
		owed := st.Gross - st.Credits
		if owed < 0 {
			st.Carried = -owed
		} else {
			var err error
			if st.Fee, st.Net, err = splitFee(owed, feeBP); err != nil {
				return nil, err
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *Statement) int {
		return cmp.Or(strings.Compare(a.Publisher, b.Publisher), strings.Compare(a.Currency, b.Currency))
	})
	return out, nil
}

// insertRows is how many rows one INSERT of lines writes.
const insertRows = 100

func insertInvoices(ctx context.Context, tx *sqlx.Tx, invoices []*Invoice) error {
	for chunk := range slices.Chunk(invoices, insertRows) {
		if err := insertValues(ctx, tx, `INSERT INTO billing_invoices (id, workspace_id, period, currency, total, created_at) VALUES `,
			len(chunk), func(i int) []any {
				v := chunk[i]
				return []any{v.ID, v.WorkspaceID, v.Period, v.Currency, v.Total, v.CreatedAt}
			}); err != nil {
			return fmt.Errorf("insert invoices: %w", err)
		}
	}
	type lineOf struct {
		inv *Invoice
		l   InvoiceLine
	}
	var lines []lineOf
	for _, inv := range invoices {
		for _, l := range inv.Lines {
			lines = append(lines, lineOf{inv, l})
		}
	}
	for chunk := range slices.Chunk(lines, insertRows) {
		err := insertValues(ctx, tx, `INSERT INTO billing_invoice_lines (invoice_id, n, listing, installation, component,
			quantity, unit_amount, per_units, amount) VALUES `, len(chunk), func(i int) []any {
			v := chunk[i]
			return []any{v.inv.ID, v.l.N, v.l.Listing, v.l.Installation, v.l.Component, v.l.Quantity, v.l.UnitAmount, v.l.PerUnits, v.l.Amount}
		})
		if err != nil {
			return fmt.Errorf("insert invoice lines: %w", err)
		}
	}
	return nil
}

func insertStatements(ctx context.Context, tx *sqlx.Tx, statements []*Statement) error {
	for chunk := range slices.Chunk(statements, insertRows) {
		err := insertValues(ctx, tx, `INSERT INTO billing_statements (publisher, period, currency, gross, credits, fee, net, carried,
			fee_basis_points, listings, created_at) VALUES `, len(chunk), func(i int) []any {
			v := chunk[i]
			listings, _ := json.Marshal(v.Listings)
			return []any{v.Publisher, v.Period, v.Currency, v.Gross, v.Credits, v.Fee, v.Net, v.Carried, v.FeeBasisPoints, string(listings),
				v.CreatedAt}
		})
		if err != nil {
			return fmt.Errorf("insert statements: %w", err)
		}
	}
	return nil
}

// insertValues runs prefix with n rows of values, row(i) each.
func insertValues(ctx context.Context, tx *sqlx.Tx, prefix string, n int, row func(i int) []any) error {
	var b strings.Builder
	b.WriteString(prefix)
	var args []any
	for i := range n {
		vals := row(i)
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")")
		args = append(args, vals...)
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(b.String()), args...)
	return err
}

// CloseEndedMonths closes the month before the current one, if no close
// has, at feeBP; and then again each time every passes, until ctx ends.
// Each server runs it: whichever gets to a month first closes it, once
// (closeMonth). Failures are logged and tried again on the next tick.
func (s *Service) CloseEndedMonths(ctx context.Context, feeBP int, every time.Duration, logf func(msg string, args ...any)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		last := s.cfg.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
		var closed int
		db := s.cfg.DB.DB()
		err := db.GetContext(ctx, &closed, db.Rebind(`SELECT COUNT(*) FROM billing_periods WHERE period = ?`), last)
		if err == nil && closed == 0 {
			var res []CloseResult
			if res, err = s.Close(ctx, last, feeBP); err == nil {
				for _, r := range res {
					if r.Closed {
						logf("closed a billing month", "period", r.Period, "invoices", r.Invoices, "statements", r.Statements)
					}
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			logf("closing the last billing month failed; trying again later", "period", last, "error", err)
		}
		if err := s.pruneReservations(ctx); err != nil && ctx.Err() == nil {
			logf("pruning budget reservations failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneReservations deletes the reservations that no longer count: an
// hour old, and their run finished or never stored.
func (s *Service) pruneReservations(ctx context.Context) error {
	db := s.cfg.DB.DB()
	_, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM billing_reservations WHERE created_at < ? AND NOT EXISTS
		(SELECT 1 FROM runs WHERE runs.workspace_id = billing_reservations.workspace_id AND runs.id = billing_reservations.run_id
			AND runs.status IN ('queued', 'running'))`), s.cfg.Now().UTC().Add(-time.Hour))
	return err
}
