package billing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Budgets. A workspace may cap what it spends in a month: the whole
// workspace, and each installation on its own. A soft cap only alerts; a
// hard cap also refuses, before anything is stored or called, a run that
// would take the spend past it (402 budget_exceeded).
//
// Spend is what the month's invoice would say now: the month's usage
// priced by the plans in effect (Rate), in the budget's currency, plus the
// runs in flight, each priced as if it succeeded. A run is admitted under
// a lock on the workspace's budgets: it reads the spend, adds itself and
// is reserved (billing_reservations) in one transaction, so that however
// many servers admit runs at once, the runs admitted never take the spend
// past a hard cap. A reservation counts while its run is unfinished (a run
// that succeeded is in the usage instead, written with its end; one that
// failed costs nothing), and, for a minute, before its run is stored.

// WorkspaceScope is the scope of a workspace's own budget; any other
// scope is an installation's id.
const WorkspaceScope = "workspace"

// Budget is a monthly spend cap.
type Budget struct {
	// Scope is WorkspaceScope or an installation's id.
	Scope    string `json:"scope"`
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	// Hard refuses runs past Amount; a soft budget only alerts.
	Hard      bool      `json:"hard"`
	UpdatedAt time.Time `json:"updated_at"`
	// Spend is this month's so far, in flight included (on reads).
	Spend *int64 `json:"spend,omitempty"`
}

// budgetTTL is how long a server keeps a workspace's budgets before
// reading them again: a budget set on one server takes effect on the
// others within it.
const budgetTTL = 2 * time.Second

// reservationGrace is how long a reservation counts before its run is
// stored: a server that admitted a run and then stopped holds that much
// of the budget for so long.
const reservationGrace = time.Minute

// DefaultPaymentGrace is how long a workspace may be past due before its
// runs of priced listings are refused.
const DefaultPaymentGrace = 7 * 24 * time.Hour

// budgetEntry is what admitting a workspace's runs needs to know of it:
// its budgets, and since when it is past due (nil: it is not).
type budgetEntry struct {
	budgets      []Budget
	pastDueSince *time.Time
	read         time.Time
}

// budgetCache holds each workspace's budgets, read at most budgetTTL ago.
type budgetCache struct {
	mu sync.Mutex
	m  map[string]budgetEntry
}

func (s *Service) budgets(ctx context.Context, workspaceID string) (budgetEntry, error) {
	now := time.Now()
	s.budgetCache.mu.Lock()
	e, ok := s.budgetCache.m[workspaceID]
	s.budgetCache.mu.Unlock()
	if ok && now.Sub(e.read) < budgetTTL {
		return e, nil
	}
	db := s.cfg.DB.DB()
	list, err := s.readBudgets(ctx, db, workspaceID)
	if err != nil {
		return budgetEntry{}, err
	}
	e = budgetEntry{budgets: list, read: now}
	var since []time.Time
	if err := db.SelectContext(ctx, &since, db.Rebind(`SELECT past_due_since FROM billing_accounts
		WHERE workspace_id = ? AND past_due_since IS NOT NULL`), workspaceID); err != nil {
		return budgetEntry{}, fmt.Errorf("billing: read the workspace's standing: %w", err)
	}
	if len(since) > 0 {
		e.pastDueSince = &since[0]
	}
	s.budgetCache.mu.Lock()
	if s.budgetCache.m == nil {
		s.budgetCache.m = map[string]budgetEntry{}
	}
	s.budgetCache.m[workspaceID] = e
	s.budgetCache.mu.Unlock()
	return e, nil
}

// Refresh drops what the server keeps of every workspace's budgets and
// standing: the next run of each reads them again.
func (s *Service) Refresh() {
	s.budgetCache.mu.Lock()
	clear(s.budgetCache.m)
	s.budgetCache.mu.Unlock()
}

// PaymentGrace is how long a workspace may be past due before its runs
// of priced listings are refused.
func (s *Service) PaymentGrace() time.Duration {
	return cmp.Or(s.cfg.PaymentGrace, DefaultPaymentGrace)
}

func (s *Service) forgetBudgets(workspaceID string) {
	s.budgetCache.mu.Lock()
	delete(s.budgetCache.m, workspaceID)
	s.budgetCache.mu.Unlock()
}

func (s *Service) readBudgets(ctx context.Context, db sqlx.QueryerContext, workspaceID string) ([]Budget, error) {
	var rows []struct {
		Scope     string    `db:"scope"`
		Currency  string    `db:"currency"`
		Amount    int64     `db:"amount"`
		Hard      bool      `db:"hard"`
		UpdatedAt time.Time `db:"updated_at"`
	}
	err := sqlx.SelectContext(ctx, db, &rows, s.cfg.DB.DB().Rebind(`SELECT scope, currency, amount, hard, updated_at
		FROM billing_budgets WHERE workspace_id = ? ORDER BY scope`), workspaceID)
	if err != nil {
		return nil, fmt.Errorf("billing: read budgets: %w", err)
	}
	out := make([]Budget, len(rows))
	for i, r := range rows {
		out[i] = Budget{Scope: r.Scope, Currency: r.Currency, Amount: r.Amount, Hard: r.Hard, UpdatedAt: r.UpdatedAt.UTC()}
	}
	return out, nil
}

// monthPlans are the priced plans of month, which cannot change once
// the month has begun (a plan takes effect on a first of a month, at
// least NoticeDays after it is set): read once per month.
func (s *Service) monthPlans(ctx context.Context, month string) (map[string]*Plan, error) {
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	if s.plansMonth == month {
		return s.plans, nil
	}
	plans, err := s.plansFor(ctx, month)
	if err != nil {
		return nil, err
	}
	s.plansMonth, s.plans = month, plans
	return plans, nil
}

// meterRow is what runs are counted under in usage_daily (and a run in
// billing_reservations), and how many.
type meterRow struct {
	Day             string `db:"day"`
	Package         string `db:"package"`
	Template        string `db:"template"`
	Installation    string `db:"installation"`
	Action          string `db:"action"`
	ConnectorAction string `db:"connector_action"`
	Runs            int64  `db:"runs"`
}

// runMeter is the row a run will be counted under if it succeeds today.
func runMeter(run *core.Run, day string) meterRow {
	r := meterRow{Day: day, Package: run.Package, Action: run.Action, ConnectorAction: run.ConnectorAction(), Runs: 1}
	if run.Preset != nil {
		r.Template, r.Installation = run.Preset.Template, run.Preset.Installation
	}
	return r
}

// byListing sorts meter rows into each priced listing's usage: a preset's
// run under its template, by the preset's name, and under its connector's
// package, by the action's.
func byListing(rows []meterRow, plans map[string]*Plan) map[string]*Usage {
	usage := map[string]*Usage{}
	add := func(listing string, r UsageRow) {
		if plans[listing] == nil {
			return
		}
		u := usage[listing]
		if u == nil {
			u = &Usage{}
			usage[listing] = u
		}
		u.Rows = append(u.Rows, r)
	}
	for _, r := range rows {
		if r.Template != "" {
			_, preset, _ := strings.Cut(r.Action, ".")
			add(r.Template, UsageRow{Day: r.Day, Installation: r.Installation, Action: preset, Runs: r.Runs})
		}
		if r.Package != "" {
			add(r.Package, UsageRow{Day: r.Day, Installation: r.Installation, Action: r.ConnectorAction, Runs: r.Runs})
		}
	}
	return usage
}

// spendOf prices rows with plans: what the lines in currency come to,
// for the workspace and for each installation. Monthly fees are not what
// runs cost: a budget does not count them (refusing runs would not stop
// them).
func spendOf(rows []meterRow, plans map[string]*Plan, currency string) (total int64, byInstallation map[string]int64, err error) {
	byInstallation = map[string]int64{}
	for listing, u := range byListing(rows, plans) {
		p := plans[listing]
		if p.Currency != currency || p.Kind == Monthly {
			continue
		}
		lines, _, err := Rate(p, *u)
		if err != nil {
			return 0, nil, err
		}
		for _, l := range lines {
			if total, err = addAmount(total, l.Amount); err != nil {
				return 0, nil, err
			}
			byInstallation[l.Installation] += l.Amount
		}
	}
	return total, byInstallation, nil
}

// spendRows reads the month's usage of the workspace and its live
// reservations, as of now, in one statement (one snapshot), inside the
// budgets' transaction or on its own.
func (s *Service) spendRows(ctx context.Context, q sqlx.ExtContext, workspaceID, month string, now time.Time) ([]meterRow, error) {
	var rows []meterRow
	err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT day, package, template, installation, action, connector_action, runs
		FROM usage_daily WHERE workspace_id = ? AND period = ?
		UNION ALL
		SELECT r.day, r.package, r.template, r.installation, r.action, r.connector_action, 1
		FROM billing_reservations r LEFT JOIN runs ON runs.workspace_id = r.workspace_id AND runs.id = r.run_id
		WHERE r.workspace_id = ? AND r.period = ?
			AND (runs.status IN ('queued', 'running') OR (runs.id IS NULL AND r.created_at > ?))`),
		workspaceID, month, workspaceID, month, now.Add(-reservationGrace))
	if err != nil {
		return nil, fmt.Errorf("billing: read spend: %w", err)
	}
	return rows, nil
}

// inBudgetTx runs fn in a transaction that holds the workspace's budgets
// against every other: on PostgreSQL a transaction of its own that locks
// the workspace's budget rows (and nothing before them, so that it waits
// on no one holding what it holds); on SQLite a group of the store's,
// which are written one at a time. audit appends in fn's transaction on
// SQLite; on PostgreSQL the records are appended just after it commits.
func (s *Service) inBudgetTx(ctx context.Context, workspaceID string, fn func(tx *sqlx.Tx, audit func(*core.AuditRecord) error) error) error {
	if s.cfg.DB.Dialect() != "postgres" {
		return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
			return fn(tx, audit)
		})
	}
	var records []*core.AuditRecord
	err := func() error {
		tx, err := s.cfg.DB.DB().BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM billing_budgets WHERE workspace_id = $1 ORDER BY scope FOR UPDATE`, workspaceID); err != nil {
			return fmt.Errorf("billing: lock budgets: %w", err)
		}
		if err := fn(tx, func(r *core.AuditRecord) error { records = append(records, r); return nil }); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil || len(records) == 0 {
		return err
	}
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, _ *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		for _, r := range records {
			c := *r // a group written again runs this again
			if err := audit(&c); err != nil {
				return err
			}
		}
		return nil
	})
}

// Admit is core.RunGuard: it refuses, with EBudgetExceeded, a run of a
// priced listing that would take its workspace's or its installation's
// spend this month past a hard budget, and reserves the budget for any
// other run of a priced listing in a workspace with budgets. It alerts
// (an audit record, and the workspace's alert webhook) when the spend
// reaches 80% and 100% of a budget.
func (s *Service) Admit(ctx context.Context, run *core.Run) (func(), error) {
	entry, err := s.budgets(ctx, run.WorkspaceID)
	if err != nil || (len(entry.budgets) == 0 && entry.pastDueSince == nil) {
		return nil, err
	}
	budgets := entry.budgets
	now := s.cfg.Now().UTC()
	month := now.Format("2006-01")
	plans, err := s.monthPlans(ctx, month)
	if err != nil {
		return nil, err
	}
	meter := runMeter(run, now.Format(time.DateOnly))
	if len(byListing([]meterRow{meter}, plans)) == 0 {
		return nil, nil // nothing it runs is priced
	}
	if since := entry.pastDueSince; since != nil {
		grace := s.PaymentGrace()
		if until := since.Add(grace); !now.Before(until) {
			return nil, &core.Error{Code: core.EPaymentRequired, Message: fmt.Sprintf(
				"the workspace's payment is past due since %s (a grace period of %s ended %s): pay its open invoices; runs of free listings still work",
				since.UTC().Format(time.RFC3339), grace, until.UTC().Format(time.RFC3339))}
		}
	}
	var applies []Budget
	for _, b := range budgets {
		if b.Scope == WorkspaceScope || b.Scope == meter.Installation {
			applies = append(applies, b)
		}
	}
	if len(applies) == 0 {
		return nil, nil
	}
	var refused error
	var alerts []alert
	err = s.inBudgetTx(ctx, run.WorkspaceID, func(tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		refused, alerts = nil, nil
		rows, err := s.spendRows(ctx, tx, run.WorkspaceID, month, now)
		if err != nil {
			return err
		}
		// The spend without the run and with it, priced once per currency.
		type priced struct {
			total int64
			by    map[string]int64
		}
		with := append(rows[:len(rows):len(rows)], meter)
		before, after := map[string]priced{}, map[string]priced{}
		for _, b := range applies {
			if _, done := before[b.Currency]; done {
				continue
			}
			t, by, err := spendOf(rows, plans, b.Currency)
			if err != nil {
				return err
			}
			before[b.Currency] = priced{t, by}
			if t, by, err = spendOf(with, plans, b.Currency); err != nil {
				return err
			}
			after[b.Currency] = priced{t, by}
		}
		type spend struct{ before, after int64 }
		spends := make([]spend, len(applies))
		for i, b := range applies {
			x, y := before[b.Currency], after[b.Currency]
			spends[i] = spend{x.total, y.total}
			if b.Scope != WorkspaceScope {
				spends[i] = spend{x.by[b.Scope], y.by[b.Scope]}
			}
		}
		// A run refused by one budget alerts that budget's 100%, and
		// nothing else: it does not happen.
		for i, b := range applies {
			if sp := spends[i]; b.Hard && sp.after > b.Amount && sp.after > sp.before {
				refused = &core.Error{Code: core.EBudgetExceeded, Message: fmt.Sprintf(
					"this run would take %s's spend this month to %s, past its budget of %s", scopeName(b.Scope),
					FormatAmount(sp.after, b.Currency), FormatAmount(b.Amount, b.Currency))}
				alerts = []alert{{Workspace: run.WorkspaceID, Period: month, Scope: b.Scope, Threshold: 100, Currency: b.Currency,
					Amount: b.Amount, Spend: sp.before}}
				break
			}
		}
		for i, b := range applies {
			if refused != nil {
				break
			}
			for _, pct := range []int{80, 100} {
				mark := b.Amount * int64(pct) / 100
				if sp := spends[i]; sp.before < mark && sp.after >= mark {
					alerts = append(alerts, alert{Workspace: run.WorkspaceID, Period: month, Scope: b.Scope, Threshold: pct,
						Currency: b.Currency, Amount: b.Amount, Spend: sp.after})
				}
			}
		}
		fresh, err := s.recordAlerts(ctx, tx, alerts, now, audit)
		if err != nil {
			return err
		}
		alerts = fresh
		if refused != nil {
			return nil // the alert of the refusal is kept
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_reservations (run_id, workspace_id, period, day, package, template,
			installation, action, connector_action, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			run.ID, run.WorkspaceID, month, meter.Day, meter.Package, meter.Template, meter.Installation, meter.Action,
			meter.ConnectorAction, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.deliverAlerts(alerts)
	if refused != nil {
		return nil, refused
	}
	return func() { s.release(run) }, nil
}

func scopeName(scope string) string {
	if scope == WorkspaceScope {
		return "the workspace"
	}
	return "installation " + scope
}

// release drops a run's reservation: the run was not stored.
func (s *Service) release(run *core.Run) {
	db := s.cfg.DB.DB()
	db.ExecContext(context.Background(), db.Rebind(`DELETE FROM billing_reservations WHERE run_id = ?`), run.ID)
}

// SetBudget sets (or replaces) one of the workspace's budgets: scope is
// WorkspaceScope, or an installation's id or name.
func (s *Service) SetBudget(ctx context.Context, c *core.Caller, scope string, b Budget) (*Budget, error) {
	if _, ok := currencies[b.Currency]; !ok {
		return nil, &core.Error{Code: core.EInvalid, Message: fmt.Sprintf("currency %q: want an ISO 4217 code Relay bills in", b.Currency),
			Fields: []core.FieldError{{Pointer: "/currency", Message: "unknown currency"}}}
	}
	if b.Amount < 0 {
		return nil, &core.Error{Code: core.EInvalid, Message: "a budget's amount is not negative",
			Fields: []core.FieldError{{Pointer: "/amount", Message: "negative"}}}
	}
	scope, err := s.scopeOf(ctx, c.WorkspaceID, scope)
	if err != nil {
		return nil, err
	}
	b.Scope, b.UpdatedAt, b.Spend = scope, s.cfg.Now().UTC().Truncate(time.Microsecond), nil
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_budgets (workspace_id, scope, currency, amount, hard, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id, scope) DO UPDATE SET currency = excluded.currency,
			amount = excluded.amount, hard = excluded.hard, updated_at = excluded.updated_at`),
			c.WorkspaceID, b.Scope, b.Currency, b.Amount, b.Hard, b.UpdatedAt)
		if err != nil {
			return fmt.Errorf("billing: set budget: %w", err)
		}
		return audit(c.AuditRecord("billing.budget.set", "budget:"+b.Scope, "success",
			auditJSON(map[string]any{"currency": b.Currency, "amount": b.Amount, "hard": b.Hard})))
	})
	s.forgetBudgets(c.WorkspaceID)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// DeleteBudget removes one of the workspace's budgets; ENotFound when it
// has none of that scope.
func (s *Service) DeleteBudget(ctx context.Context, c *core.Caller, scope string) error {
	scope, err := s.scopeOf(ctx, c.WorkspaceID, scope)
	if err != nil {
		return err
	}
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM billing_budgets WHERE workspace_id = ? AND scope = ?`), c.WorkspaceID, scope)
		if err != nil {
			return fmt.Errorf("billing: delete budget: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.ENotFound, "no budget for %s", scopeName(scope))
		}
		return audit(c.AuditRecord("billing.budget.delete", "budget:"+scope, "success", nil))
	})
	s.forgetBudgets(c.WorkspaceID)
	return err
}

// Budgets lists the workspace's budgets with this month's spend.
func (s *Service) Budgets(ctx context.Context, workspaceID string) ([]Budget, error) {
	db := s.cfg.DB.DB()
	list, err := s.readBudgets(ctx, db, workspaceID)
	if err != nil || len(list) == 0 {
		return list, err
	}
	now := s.cfg.Now().UTC()
	month := now.Format("2006-01")
	plans, err := s.monthPlans(ctx, month)
	if err != nil {
		return nil, err
	}
	rows, err := s.spendRows(ctx, db, workspaceID, month, now)
	if err != nil {
		return nil, err
	}
	for i := range list {
		total, by, err := spendOf(rows, plans, list[i].Currency)
		if err != nil {
			return nil, err
		}
		if list[i].Scope != WorkspaceScope {
			total = by[list[i].Scope]
		}
		list[i].Spend = &total
	}
	return list, nil
}

// scopeOf reads a budget's scope: WorkspaceScope, or an installation of
// the workspace by id or name, as its id.
func (s *Service) scopeOf(ctx context.Context, workspaceID, scope string) (string, error) {
	if scope == WorkspaceScope {
		return scope, nil
	}
	db := s.cfg.DB.DB()
	var id string
	err := db.GetContext(ctx, &id, db.Rebind(`SELECT id FROM marketplace_installations WHERE workspace_id = ? AND (id = ? OR name = ?)`),
		workspaceID, scope, scope)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.Errorf(core.ENotFound, "a budget's scope is %q or one of the workspace's installations; there is no installation %q",
			WorkspaceScope, scope)
	}
	if err != nil {
		return "", fmt.Errorf("billing: find installation: %w", err)
	}
	return id, nil
}
