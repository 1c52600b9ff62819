package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
)

// WebhookPath is where Stripe posts its events.
const WebhookPath = "/v1/billing/stripe/webhook"

// Routes are the provider's endpoints: Stripe's webhook (public; each
// event is checked against its Stripe-Signature), a workspace's standing,
// and a publisher's payout account (with its token).
func (p *Stripe) Routes() []core.Route {
	routes := []core.Route{
		{Method: http.MethodGet, Path: "/v1/billing/account", Role: core.RoleAdmin, Handle: p.getAccount},
		{Method: http.MethodGet, Path: "/v1/publisher/payout-account", Handle: p.cfg.Billing.AsPublisher(p.getPayoutAccount)},
		{Method: http.MethodPut, Path: "/v1/publisher/payout-account", Handle: p.cfg.Billing.AsPublisher(p.putPayoutAccount)},
	}
	if p.cfg.WebhookSecret != "" {
		routes = append(routes, core.Route{Method: http.MethodPost, Path: WebhookPath, Handle: p.webhook})
	}
	return routes
}

// invoiceStatus is what each of Stripe's invoice events makes of the
// invoice; the events not here are acknowledged and ignored.
var invoiceStatus = map[string]string{
	"invoice.paid":                 "paid",
	"invoice.payment_failed":       "payment_failed",
	"invoice.marked_uncollectible": "payment_failed",
	"invoice.voided":               "void",
}

// webhook handles an event from Stripe: a Relay invoice paid, voided, or
// whose payment failed. A failed payment makes its workspace past due
// (from the first failure); the workspace is in good standing again when
// none of its invoices is failed. An invoice paid or voided stays so
// whatever arrives after, and an event already handled (Stripe redelivers)
// changes nothing.
func (p *Stripe) webhook(ctx context.Context, req *core.Request) (*core.Response, error) {
	ev, err := webhook.ConstructEventWithOptions(req.Body, req.Header.Get("Stripe-Signature"), p.cfg.WebhookSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		return nil, core.Errorf(core.EWebhookSignatureInvalid, "the event's Stripe-Signature does not verify with the endpoint's secret: %v", err)
	}
	status, ok := invoiceStatus[string(ev.Type)]
	if !ok {
		return core.JSONResponse(http.StatusOK, map[string]any{"received": true}), nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &obj) != nil || obj.ID == "" {
		return nil, core.Errorf(core.EInvalid, "event %s (%s) carries no invoice", ev.ID, ev.Type)
	}
	now := p.now()
	err = p.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_provider_events (id, type, received_at) VALUES (?, ?, ?)
			ON CONFLICT (id) DO NOTHING`), ev.ID, string(ev.Type), now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // handled before
		}
		var inv struct {
			ID        string `db:"invoice_id"`
			Workspace string `db:"workspace_id"`
			Status    string `db:"status"`
		}
		err = tx.GetContext(ctx, &inv, tx.Rebind(`SELECT invoice_id, workspace_id, status FROM billing_invoice_payments
			WHERE provider_invoice = ?`), obj.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // not an invoice of Relay's
		}
		if err != nil {
			return err
		}
		if inv.Status == "paid" || inv.Status == "void" || inv.Status == status {
			return nil
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE billing_invoice_payments SET status = ?, updated_at = ? WHERE invoice_id = ?`),
			status, now, inv.ID); err != nil {
			return err
		}
		if status == "payment_failed" {
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE billing_accounts SET past_due_since = COALESCE(past_due_since, ?), updated_at = ?
				WHERE workspace_id = ?`), now, now, inv.Workspace)
		} else {
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE billing_accounts SET past_due_since = NULL, updated_at = ?
				WHERE workspace_id = ? AND NOT EXISTS (SELECT 1 FROM billing_invoice_payments
					WHERE workspace_id = ? AND status = 'payment_failed')`), now, inv.Workspace, inv.Workspace)
		}
		if err != nil {
			return err
		}
		details, _ := json.Marshal(map[string]string{"stripe_invoice": obj.ID, "stripe_event": ev.ID, "status": status})
		return audit(&core.AuditRecord{WorkspaceID: inv.Workspace, Action: "billing.payment." + status, Target: "invoice:" + inv.ID,
			Outcome: "success", IP: req.IP, RequestID: req.RequestID, Details: details})
	})
	if err != nil {
		return nil, err
	}
	p.cfg.Billing.Refresh()
	return core.JSONResponse(http.StatusOK, map[string]any{"received": true}), nil
}

// Account is a workspace's standing with the provider.
type Account struct {
	Customer string `json:"customer"`
	// Status is active, or past_due from a failed payment until its
	// invoices are paid; runs of priced listings are refused from
	// GraceUntil.
	Status       string     `json:"status"`
	PastDueSince *time.Time `json:"past_due_since,omitempty"`
	GraceUntil   *time.Time `json:"grace_until,omitempty"`
}

func (p *Stripe) getAccount(ctx context.Context, req *core.Request) (*core.Response, error) {
	db := p.cfg.DB.DB()
	var row struct {
		Customer     string     `db:"customer"`
		PastDueSince *time.Time `db:"past_due_since"`
	}
	err := db.GetContext(ctx, &row, db.Rebind(`SELECT customer, past_due_since FROM billing_accounts WHERE workspace_id = ?`),
		req.Caller.WorkspaceID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "the workspace has no Stripe customer yet: it is made with its first invoice that owes something")
	}
	if err != nil {
		return nil, err
	}
	a := Account{Customer: row.Customer, Status: "active"}
	if row.PastDueSince != nil {
		since := row.PastDueSince.UTC()
		until := since.Add(p.cfg.Billing.PaymentGrace())
		a.Status, a.PastDueSince, a.GraceUntil = "past_due", &since, &until
	}
	return core.JSONResponse(http.StatusOK, a), nil
}

// PayoutAccount is where a publisher is paid.
type PayoutAccount struct {
	StripeAccount string    `json:"stripe_account" db:"account"`
	UpdatedAt     time.Time `json:"updated_at" db:"updated_at"`
}

var accountID = regexp.MustCompile(`^acct_[A-Za-z0-9]{1,255}$`)

func (p *Stripe) getPayoutAccount(ctx context.Context, _ *core.Request, pub *registry.Publisher, _ *core.Caller) (*core.Response, error) {
	db := p.cfg.DB.DB()
	var a PayoutAccount
	err := db.GetContext(ctx, &a, db.Rebind(`SELECT account, updated_at FROM billing_payout_accounts WHERE publisher = ?`), pub.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "publisher %s has no payout account: PUT one (a Stripe connected account, acct_…)", pub.Name)
	}
	if err != nil {
		return nil, err
	}
	a.UpdatedAt = a.UpdatedAt.UTC()
	return core.JSONResponse(http.StatusOK, a), nil
}

func (p *Stripe) putPayoutAccount(ctx context.Context, req *core.Request, pub *registry.Publisher, c *core.Caller) (*core.Response, error) {
	var in struct {
		StripeAccount string `json:"stripe_account"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if !accountID.MatchString(in.StripeAccount) {
		return nil, core.Errorf(core.EInvalid, "stripe_account %q: want a Stripe connected account's id, acct_…", in.StripeAccount)
	}
	a := PayoutAccount{StripeAccount: in.StripeAccount, UpdatedAt: p.now()}
	err := p.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_payout_accounts (publisher, account, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (publisher) DO UPDATE SET account = excluded.account, updated_at = excluded.updated_at`),
			pub.Name, a.StripeAccount, a.UpdatedAt); err != nil {
			return fmt.Errorf("payments: set the payout account: %w", err)
		}
		details, _ := json.Marshal(map[string]string{"stripe_account": a.StripeAccount})
		return audit(c.AuditRecord("billing.payout_account.set", "publisher:"+pub.Name, "success", details))
	})
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, a), nil
}
