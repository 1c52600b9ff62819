package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Billing: listings' prices, a workspace's usage, budgets, invoices and
// standing, a publisher's statements and payout account. Amounts are
// integer minor units of Currency (cents of USD).

// Tier is a tier of a tiered plan: runs up to UpTo (nil: the rest) at
// UnitAmount each (per PerUnits).
type Tier struct {
	UpTo       *int64 `json:"up_to"`
	UnitAmount int64  `json:"unit_amount"`
}

// PricePlan is a listing's price plan (docs/billing.md).
type PricePlan struct {
	Kind          string           `json:"kind"` // free, per_execution, monthly, tiered
	Currency      string           `json:"currency,omitempty"`
	UnitAmount    int64            `json:"unit_amount,omitempty"`
	Actions       map[string]int64 `json:"actions,omitempty"`
	PerUnits      int64            `json:"per_units,omitempty"`
	MonthlyAmount int64            `json:"monthly_amount,omitempty"`
	Tiers         []Tier           `json:"tiers,omitempty"`
	TiersMode     string           `json:"tiers_mode,omitempty"`
	FreeAllowance int64            `json:"free_allowance,omitempty"`
}

// ScheduledPlan is a plan and the day (YYYY-MM-DD) it takes effect.
type ScheduledPlan struct {
	EffectiveFrom string    `json:"effective_from"`
	Plan          PricePlan `json:"plan"`
}

// Price is a listing's plan in effect and the one announced next.
type Price struct {
	Current ScheduledPlan  `json:"current"`
	Pending *ScheduledPlan `json:"pending,omitempty"`
}

// UsageRow is a count of succeeded runs of a day, an installation or an
// action (as the query groups them), and (by day or installation) what
// they added to their months' spend, by currency, in minor units.
type UsageRow struct {
	Day          string           `json:"day,omitempty"`
	Installation string           `json:"installation,omitempty"`
	Action       string           `json:"action,omitempty"`
	Runs         int64            `json:"runs"`
	Spend        map[string]int64 `json:"spend,omitempty"`
}

// Usage is a workspace's succeeded runs from From to To, grouped.
type Usage struct {
	From    string     `json:"from"`
	To      string     `json:"to"`
	GroupBy string     `json:"group_by"`
	Data    []UsageRow `json:"data"`
}

// InvoiceLine is one priced part of an invoice.
type InvoiceLine struct {
	N            int    `json:"n"`
	Listing      string `json:"listing"`
	Installation string `json:"installation,omitempty"`
	Component    string `json:"component"`
	Quantity     int64  `json:"quantity"`
	UnitAmount   int64  `json:"unit_amount"`
	PerUnits     int64  `json:"per_units"`
	Amount       int64  `json:"amount"`
}

// Invoice is what a workspace owes for a closed month in one currency; it
// never changes (corrections are its credit notes).
type Invoice struct {
	ID          string          `json:"id"`
	Period      string          `json:"period"`
	Currency    string          `json:"currency"`
	Total       int64           `json:"total"`
	CreatedAt   time.Time       `json:"created_at"`
	Lines       []InvoiceLine   `json:"lines,omitempty"`
	CreditNotes json.RawMessage `json:"credit_notes,omitempty"`
	Credited    int64           `json:"credited,omitempty"`
}

// Statement is what a publisher earned in a month in one currency: Fee +
// Net = Gross - Credits, or Carried what passes the gross.
type Statement struct {
	Publisher      string          `json:"publisher"`
	Period         string          `json:"period"`
	Currency       string          `json:"currency"`
	Gross          int64           `json:"gross"`
	Credits        int64           `json:"credits"`
	Fee            int64           `json:"fee"`
	Net            int64           `json:"net"`
	Carried        int64           `json:"carried"`
	FeeBasisPoints int             `json:"fee_basis_points"`
	CreatedAt      time.Time       `json:"created_at"`
	Listings       json.RawMessage `json:"listings"`
}

// Budget is a monthly spend cap of the workspace (Scope "workspace") or
// of an installation; a hard one refuses runs past it.
type Budget struct {
	Scope     string    `json:"scope"`
	Currency  string    `json:"currency"`
	Amount    int64     `json:"amount"`
	Hard      bool      `json:"hard"`
	UpdatedAt time.Time `json:"updated_at"`
	Spend     *int64    `json:"spend,omitempty"`
}

// AlertHook is where budget alerts are posted; Secret, which signs them,
// is shown only when it is set.
type AlertHook struct {
	URL       string    `json:"url"`
	Secret    string    `json:"secret,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// BillingAccount is a workspace's standing with the payment provider.
type BillingAccount struct {
	Customer     string     `json:"customer"`
	Status       string     `json:"status"` // active or past_due
	PastDueSince *time.Time `json:"past_due_since,omitempty"`
	GraceUntil   *time.Time `json:"grace_until,omitempty"`
}

// PayoutAccount is where a publisher is paid.
type PayoutAccount struct {
	StripeAccount string    `json:"stripe_account"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Price returns a listing's price, listing being publisher/name (GET
// /v1/registry/packages/{publisher}/{name}/price).
func (c *Client) Price(ctx context.Context, listing string) (*Price, error) {
	var p Price
	return &p, c.do(ctx, http.MethodGet, "/v1/registry/packages/"+pkgPath(listing)+"/price", nil, &p)
}

// AnnouncePrice announces plan from effectiveFrom (the first of a month at
// least 14 days out; "" for the earliest) (PUT
// /v1/registry/packages/{publisher}/{name}/price, publisher token).
func (c *Client) AnnouncePrice(ctx context.Context, listing string, plan PricePlan, effectiveFrom string) (*Price, error) {
	var p Price
	body := map[string]any{"plan": plan}
	if effectiveFrom != "" {
		body["effective_from"] = effectiveFrom
	}
	return &p, c.do(ctx, http.MethodPut, "/v1/registry/packages/"+pkgPath(listing)+"/price", body, &p)
}

// WithdrawPendingPrice withdraws the announced plan (DELETE
// /v1/registry/packages/{publisher}/{name}/price/pending, publisher
// token).
func (c *Client) WithdrawPendingPrice(ctx context.Context, listing string) error {
	return c.do(ctx, http.MethodDelete, "/v1/registry/packages/"+pkgPath(listing)+"/price/pending", nil, nil)
}

// Usage returns the workspace's succeeded runs from from to to
// (YYYY-MM-DD; "" for the server's defaults), grouped by day,
// installation or action (GET /v1/usage, developer).
func (c *Client) Usage(ctx context.Context, from, to, groupBy string) (*Usage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"from": from, "to": to, "group_by": groupBy} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var u Usage
	return &u, c.do(ctx, http.MethodGet, "/v1/usage"+pageQuery(q, 0, ""), nil, &u)
}

// ListInvoices returns the workspace's invoices, the latest month first
// (GET /v1/billing/invoices, admin).
func (c *Client) ListInvoices(ctx context.Context) ([]Invoice, error) {
	var out struct {
		Data []Invoice `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/billing/invoices", nil, &out)
}

// Invoice returns an invoice with its lines and credit notes (GET
// /v1/billing/invoices/{id}, admin).
func (c *Client) Invoice(ctx context.Context, id string) (*Invoice, error) {
	var inv Invoice
	return &inv, c.do(ctx, http.MethodGet, "/v1/billing/invoices/"+url.PathEscape(id), nil, &inv)
}

// InvoiceCSV returns an invoice as CSV (GET
// /v1/billing/invoices/{id}?format=csv, admin).
func (c *Client) InvoiceCSV(ctx context.Context, id string) ([]byte, error) {
	return c.bytes(ctx, "/v1/billing/invoices/"+url.PathEscape(id)+"?format=csv")
}

// ListStatements returns the publisher's statements, of period
// (YYYY-MM) or all (GET /v1/publisher/statements, publisher token).
func (c *Client) ListStatements(ctx context.Context, period string) ([]Statement, error) {
	q := url.Values{}
	if period != "" {
		q.Set("period", period)
	}
	var out struct {
		Data []Statement `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/publisher/statements"+pageQuery(q, 0, ""), nil, &out)
}

// ListBudgets returns the workspace's budgets with this month's spend
// (GET /v1/billing/budgets, developer).
func (c *Client) ListBudgets(ctx context.Context) ([]Budget, error) {
	var out struct {
		Data []Budget `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/billing/budgets", nil, &out)
}

// SetBudget sets a budget: scope is "workspace" or an installation's id
// or name (PUT /v1/billing/budgets/{scope}, admin).
func (c *Client) SetBudget(ctx context.Context, scope, currency string, amount int64, hard bool) (*Budget, error) {
	var b Budget
	body := map[string]any{"currency": currency, "amount": amount, "hard": hard}
	return &b, c.do(ctx, http.MethodPut, "/v1/billing/budgets/"+url.PathEscape(scope), body, &b)
}

// DeleteBudget removes a budget (DELETE /v1/billing/budgets/{scope},
// admin).
func (c *Client) DeleteBudget(ctx context.Context, scope string) error {
	return c.do(ctx, http.MethodDelete, "/v1/billing/budgets/"+url.PathEscape(scope), nil, nil)
}

// AlertHook returns where budget alerts are posted, without its secret
// (GET /v1/billing/alert-hook, admin).
func (c *Client) AlertHook(ctx context.Context) (*AlertHook, error) {
	var h AlertHook
	return &h, c.do(ctx, http.MethodGet, "/v1/billing/alert-hook", nil, &h)
}

// SetAlertHook posts budget alerts to hookURL, signed with a new secret
// returned only now (PUT /v1/billing/alert-hook, admin).
func (c *Client) SetAlertHook(ctx context.Context, hookURL string) (*AlertHook, error) {
	var h AlertHook
	return &h, c.do(ctx, http.MethodPut, "/v1/billing/alert-hook", map[string]string{"url": hookURL}, &h)
}

// DeleteAlertHook stops posting budget alerts (DELETE
// /v1/billing/alert-hook, admin).
func (c *Client) DeleteAlertHook(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/v1/billing/alert-hook", nil, nil)
}

// BillingAccount returns the workspace's standing with Stripe (GET
// /v1/billing/account, admin).
func (c *Client) BillingAccount(ctx context.Context) (*BillingAccount, error) {
	var a BillingAccount
	return &a, c.do(ctx, http.MethodGet, "/v1/billing/account", nil, &a)
}

// PayoutAccount returns where the publisher is paid (GET
// /v1/publisher/payout-account, publisher token).
func (c *Client) PayoutAccount(ctx context.Context) (*PayoutAccount, error) {
	var a PayoutAccount
	return &a, c.do(ctx, http.MethodGet, "/v1/publisher/payout-account", nil, &a)
}

// SetPayoutAccount sets the Stripe connected account (acct_…) the
// publisher is paid to (PUT /v1/publisher/payout-account, publisher
// token).
func (c *Client) SetPayoutAccount(ctx context.Context, stripeAccount string) (*PayoutAccount, error) {
	var a PayoutAccount
	return &a, c.do(ctx, http.MethodPut, "/v1/publisher/payout-account", map[string]string{"stripe_account": stripeAccount}, &a)
}
