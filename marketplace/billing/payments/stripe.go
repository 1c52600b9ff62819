// Package payments collects what billing's invoices say, and pays what its
// statements say, through Stripe (docs/billing.md#stripe): each workspace
// is a Stripe customer, each closed invoice a Stripe invoice with an
// invoice item per line, each statement's net a Connect transfer to its
// publisher's account; and Stripe's webhooks say when a workspace's
// invoice is paid or its payment failed, which billing enforces
// (payment_required after a grace period). Everything else in billing
// works without it.
package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v82"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/billing"
)

// StripeMockEnv names stripe-mock's address (http://127.0.0.1:12111):
// set, the tests talk to it, and fail when it does not answer; unset, they
// skip. .ci/run installs and starts stripe-mock and sets it.
const StripeMockEnv = "RELAY_TEST_STRIPE_MOCK_URL"

// Config configures the Stripe provider.
type Config struct {
	// DB is the server's database (core/sqlstore.Store is one).
	DB DB
	// Billing is whose invoices and statements are collected and paid,
	// and who checks publishers' tokens.
	Billing *billing.Service
	// Key is the Stripe secret key (sk_…); WebhookSecret the signing
	// secret (whsec_…) of the endpoint Stripe posts events to.
	Key           string
	WebhookSecret string
	// APIURL is where Stripe's API is; empty: Stripe's own. Tests point it
	// at stripe-mock.
	APIURL string
	// Logf logs what goes wrong in the background; default nothing.
	Logf func(msg string, args ...any)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DB is the database.
type DB interface {
	DB() *sqlx.DB
	InAuditedTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error) error
}

// Stripe is the provider.
type Stripe struct {
	cfg Config
	sc  *stripe.Client
}

// New returns the provider.
func New(cfg Config) *Stripe {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	bc := &stripe.BackendConfig{HTTPClient: &http.Client{Timeout: 80 * time.Second}, MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	if cfg.APIURL != "" {
		bc.URL = stripe.String(cfg.APIURL)
	}
	return &Stripe{cfg: cfg, sc: stripe.NewClient(cfg.Key, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}
}

// SyncResult says what a sync sent.
type SyncResult struct {
	Invoices int `json:"invoices"`
	Payouts  int `json:"payouts"`
}

// Sync sends Stripe every closed invoice that owes something and is not
// finalized there yet, and pays every statement's net to its publisher's
// account when the publisher has one. Each request carries an
// idempotency key made from what it is for (the invoice's id and the
// line's number, the statement's publisher, month and currency), and what
// Stripe made is recorded as soon as it answers, so a sync that stops
// half-way and is run again (on any server) never bills or pays twice.
func (p *Stripe) Sync(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	db := p.cfg.DB.DB()
	var invoices []string
	err := db.SelectContext(ctx, &invoices, `SELECT i.id FROM billing_invoices i
		LEFT JOIN billing_invoice_payments p ON p.invoice_id = i.id
		WHERE i.total > 0 AND (p.invoice_id IS NULL OR p.status = 'draft') ORDER BY i.period, i.id`)
	if err != nil {
		return res, fmt.Errorf("payments: invoices to send: %w", err)
	}
	var errs []error
	for _, id := range invoices {
		if err := p.sendInvoice(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("invoice %s: %w", id, err))
			continue
		}
		res.Invoices++
	}
	n, err := p.payStatements(ctx)
	res.Payouts = n
	return res, errors.Join(append(errs, err)...)
}

// Loop syncs now and then every interval, until ctx ends.
func (p *Stripe) Loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if res, err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Logf("sending invoices and payouts to Stripe failed; trying again later", "error", err)
		} else if res.Invoices+res.Payouts > 0 {
			p.cfg.Logf("sent to Stripe", "invoices", res.Invoices, "payouts", res.Payouts)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// customer is the workspace's Stripe customer, made the first time.
func (p *Stripe) customer(ctx context.Context, workspaceID string) (string, error) {
	db := p.cfg.DB.DB()
	var id string
	err := db.GetContext(ctx, &id, db.Rebind(`SELECT customer FROM billing_accounts WHERE workspace_id = ?`), workspaceID)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	var name string
	if err := db.GetContext(ctx, &name, db.Rebind(`SELECT name FROM workspaces WHERE id = ?`), workspaceID); err != nil {
		return "", fmt.Errorf("workspace %s: %w", workspaceID, err)
	}
	params := &stripe.CustomerCreateParams{Name: stripe.String(name), Metadata: map[string]string{"relay_workspace": workspaceID}}
	params.SetIdempotencyKey("relay-customer-" + workspaceID)
	c, err := p.sc.V1Customers.Create(ctx, params)
	if err != nil {
		return "", fmt.Errorf("create the customer: %w", err)
	}
	if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO billing_accounts (workspace_id, customer, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (workspace_id) DO NOTHING`), workspaceID, c.ID, p.now()); err != nil {
		return "", err
	}
	// Another server may have recorded one first: the workspace has one.
	err = db.GetContext(ctx, &id, db.Rebind(`SELECT customer FROM billing_accounts WHERE workspace_id = ?`), workspaceID)
	return id, err
}

// sendInvoice creates the invoice at Stripe (once: its id is recorded
// before any line is added), adds the lines it does not have yet, and
// finalizes it, which starts collecting it.
func (p *Stripe) sendInvoice(ctx context.Context, id string) error {
	db := p.cfg.DB.DB()
	var workspaceID string
	if err := db.GetContext(ctx, &workspaceID, db.Rebind(`SELECT workspace_id FROM billing_invoices WHERE id = ?`), id); err != nil {
		return err
	}
	inv, err := p.cfg.Billing.Invoice(ctx, workspaceID, id)
	if err != nil {
		return err
	}
	customer, err := p.customer(ctx, workspaceID)
	if err != nil {
		return err
	}
	var remote string
	err = db.GetContext(ctx, &remote, db.Rebind(`SELECT provider_invoice FROM billing_invoice_payments WHERE invoice_id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		params := &stripe.InvoiceCreateParams{
			Customer: stripe.String(customer), Currency: stripe.String(strings.ToLower(inv.Currency)),
			AutoAdvance: stripe.Bool(true), CollectionMethod: stripe.String("charge_automatically"),
			PendingInvoiceItemsBehavior: stripe.String("exclude"),
			Description:                 stripe.String("Relay usage, " + inv.Period),
			Metadata:                    map[string]string{"relay_invoice": inv.ID, "relay_workspace": workspaceID, "relay_period": inv.Period},
		}
		params.SetIdempotencyKey("relay-invoice-" + inv.ID)
		created, err := p.sc.V1Invoices.Create(ctx, params)
		if err != nil {
			return fmt.Errorf("create the invoice: %w", err)
		}
		remote = created.ID
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO billing_invoice_payments (invoice_id, workspace_id, provider_invoice, status,
			updated_at) VALUES (?, ?, ?, 'draft', ?) ON CONFLICT (invoice_id) DO NOTHING`), inv.ID, workspaceID, remote, p.now()); err != nil {
			return err
		}
		if err := db.GetContext(ctx, &remote, db.Rebind(`SELECT provider_invoice FROM billing_invoice_payments WHERE invoice_id = ?`), id); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	// The lines it has: a sync that stopped after some of them, a day or
	// more ago (past Stripe's idempotency keys), adds only the others.
	have := map[string]bool{}
	list := &stripe.InvoiceItemListParams{Invoice: stripe.String(remote)}
	for item, err := range p.sc.V1InvoiceItems.List(ctx, list) {
		if err != nil {
			return fmt.Errorf("list the invoice's items: %w", err)
		}
		if item.Metadata["relay_invoice"] == inv.ID {
			have[item.Metadata["relay_line"]] = true
		}
	}
	for _, l := range inv.Lines {
		n := strconv.Itoa(l.N)
		if have[n] {
			continue
		}
		params := &stripe.InvoiceItemCreateParams{
			Customer: stripe.String(customer), Invoice: stripe.String(remote),
			Amount: stripe.Int64(l.Amount), Currency: stripe.String(strings.ToLower(inv.Currency)),
			Description: stripe.String(describe(l)),
			Metadata: map[string]string{"relay_invoice": inv.ID, "relay_line": n, "listing": l.Listing,
				"installation": l.Installation, "component": l.Component},
		}
		params.SetIdempotencyKey("relay-line-" + inv.ID + "-" + n)
		if _, err := p.sc.V1InvoiceItems.Create(ctx, params); err != nil {
			return fmt.Errorf("add line %d: %w", l.N, err)
		}
	}
	fin := &stripe.InvoiceFinalizeInvoiceParams{AutoAdvance: stripe.Bool(true)}
	fin.SetIdempotencyKey("relay-finalize-" + inv.ID)
	if _, err := p.sc.V1Invoices.FinalizeInvoice(ctx, remote, fin); err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	_, err = db.ExecContext(ctx, db.Rebind(`UPDATE billing_invoice_payments SET status = 'open', updated_at = ?
		WHERE invoice_id = ? AND status = 'draft'`), p.now(), inv.ID)
	return err
}

// describe is an invoice line as a person reads it on Stripe's invoice.
func describe(l billing.InvoiceLine) string {
	s := fmt.Sprintf("%s · %s · %d", l.Listing, l.Component, l.Quantity)
	if l.Installation != "" {
		s += " · installation " + l.Installation
	}
	return s
}

// payStatements transfers each statement's net that is not paid yet to
// its publisher's connected account; publishers without one are paid
// once they have one.
func (p *Stripe) payStatements(ctx context.Context) (int, error) {
	db := p.cfg.DB.DB()
	var due []struct {
		Publisher string `db:"publisher"`
		Period    string `db:"period"`
		Currency  string `db:"currency"`
		Net       int64  `db:"net"`
		Account   string `db:"account"`
	}
	err := db.SelectContext(ctx, &due, `SELECT s.publisher, s.period, s.currency, s.net, a.account FROM billing_statements s
		JOIN billing_payout_accounts a ON a.publisher = s.publisher
		LEFT JOIN billing_payouts p ON p.publisher = s.publisher AND p.period = s.period AND p.currency = s.currency
		WHERE s.net > 0 AND p.publisher IS NULL ORDER BY s.period, s.publisher, s.currency`)
	if err != nil {
		return 0, fmt.Errorf("payments: statements to pay: %w", err)
	}
	n := 0
	for _, st := range due {
		key := st.Publisher + "-" + st.Period + "-" + st.Currency
		params := &stripe.TransferCreateParams{
			Amount: stripe.Int64(st.Net), Currency: stripe.String(strings.ToLower(st.Currency)), Destination: stripe.String(st.Account),
			TransferGroup: stripe.String("relay-" + st.Period),
			Description:   stripe.String("Relay marketplace earnings, " + st.Period),
			Metadata:      map[string]string{"relay_publisher": st.Publisher, "relay_period": st.Period},
		}
		params.SetIdempotencyKey("relay-payout-" + key)
		tr, err := p.sc.V1Transfers.Create(ctx, params)
		if err != nil {
			return n, fmt.Errorf("payments: pay %s: %w", key, err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO billing_payouts (publisher, period, currency, amount, transfer, created_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (publisher, period, currency) DO NOTHING`),
			st.Publisher, st.Period, st.Currency, st.Net, tr.ID, p.now()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (p *Stripe) now() time.Time { return p.cfg.Now().UTC().Truncate(time.Microsecond) }
