package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/httpapi/httpapitest"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/schemas/schemastest"
)

// stripeMock is stripe-mock's address, behind a proxy that records each
// request: its method, path and Idempotency-Key.
func stripeMock(t *testing.T) (string, *recorder) {
	t.Helper()
	raw := os.Getenv(StripeMockEnv)
	if raw == "" {
		t.Skip(StripeMockEnv + " not set: skipping the Stripe tests (see README)")
	}
	target, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", StripeMockEnv, err)
	}
	if resp, err := http.Get(raw + "/v1/customers"); err != nil {
		t.Fatalf("%s is set but stripe-mock does not answer: %v", StripeMockEnv, err)
	} else {
		resp.Body.Close()
	}
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r.Method + " " + r.URL.Path + " " + r.Header.Get("Idempotency-Key"))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, rec
}

type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	r.mu.Unlock()
}

// take returns the requests so far, and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// env is a database with a closed month: w1 owes an invoice of two lines
// (and one of nothing), publisher acme is owed a statement's net and has a
// payout account, beta is owed one and has none.
type env struct {
	store *sqlstore.Store
	bill  *billing.Service
	pay   *Stripe
	rec   *recorder
	now   time.Time
	w1    *core.Workspace
	inv   string // w1's invoice that owes
	token string // acme's publisher token
}

const webhookSecret = "whsec_test_relay"

func newEnv(t *testing.T, databaseURL string) *env {
	ctx := context.Background()
	apiURL, rec := stripeMock(t)
	st, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, rec: rec, now: time.Date(2030, 2, 1, 8, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return e.now }
	hasher, _ := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{5}, 32))
	_, signing, _ := minisign.GenerateKey(nil)
	reg := registry.New(registry.Config{DB: st, Blobs: registry.DirBlobs{Dir: filepath.Join(t.TempDir(), "blobs")}, Hasher: hasher,
		SigningKey: signing, Now: clock, CacheDir: filepath.Join(t.TempDir(), "cache")})
	e.bill = billing.New(billing.Config{DB: st, Registry: reg, PaymentGrace: 72 * time.Hour, Now: clock})
	e.pay = New(Config{DB: st, Billing: e.bill, Key: "sk_test_relay", WebhookSecret: webhookSecret, APIURL: apiURL, Now: clock})
	if e.w1, err = st.CreateWorkspace(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	authors, _ := st.CreateWorkspace(ctx, "authors")
	admin := &core.Caller{WorkspaceID: authors.ID, KeyID: core.NewID(), Role: core.RoleAdmin, IP: "127.0.0.1"}
	for _, name := range []string{"acme", "beta"} {
		pub, _, _ := minisign.GenerateKey(nil)
		_, token, err := reg.RegisterPublisher(ctx, admin, name, "", relaypkg.PublicKeyLine(pub))
		if err != nil {
			t.Fatal(err)
		}
		if name == "acme" {
			e.token = token
		}
	}
	db := st.DB()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, db.Rebind(q), args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.inv = core.NewID()
	exec(`INSERT INTO billing_periods (period, closed_at, fee_basis_points) VALUES ('2030-01', ?, 2000)`, e.now)
	exec(`INSERT INTO billing_invoices (id, workspace_id, period, currency, total, created_at) VALUES (?, ?, '2030-01', 'USD', 1500, ?)`,
		e.inv, e.w1.ID, e.now)
	exec(`INSERT INTO billing_invoice_lines (invoice_id, n, listing, installation, component, quantity, unit_amount, per_units, amount)
		VALUES (?, 1, 'acme/leads', 'in1', 'executions', 300, 5, 1, 1500), (?, 2, 'acme/leads', 'in1', 'free_allowance', 100, 0, 1, 0)`,
		e.inv, e.inv)
	exec(`INSERT INTO billing_invoices (id, workspace_id, period, currency, total, created_at) VALUES (?, ?, '2030-01', 'EUR', 0, ?)`,
		core.NewID(), e.w1.ID, e.now)
	for _, pub := range []string{"acme", "beta"} {
		exec(`INSERT INTO billing_statements (publisher, period, currency, gross, credits, fee, net, carried, fee_basis_points, listings,
			created_at) VALUES (?, '2030-01', 'USD', 1500, 0, 300, 1200, 0, 2000, '[]', ?)`, pub, e.now)
	}
	return e
}

func eachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) { fn(t, newEnv(t, db.URL(t))) })
	}
}

// Syncing sends each closed invoice that owes something to Stripe once:
// a customer for its workspace, the invoice, an item per line and the
// finalize, each with an idempotency key made from what it is for; and
// pays each statement's net to its publisher's connected account. A sync
// again sends nothing; one that stopped before finalizing sends the same
// requests with the same keys (never a second invoice).
func TestSync(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		hasher, _ := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{6}, 32))
		base := httpapitest.Serve(t, e.store, hasher, e.pay.Routes())
		put := func(token, body string) int {
			req, _ := http.NewRequest(http.MethodPut, base+"/v1/publisher/payout-account", strings.NewReader(body))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := put("", `{"stripe_account": "acct_1Acme"}`); code != 401 {
			t.Fatalf("a payout account set without a publisher token: %d", code)
		}
		if code := put(e.token, `{"stripe_account": "cus_nope"}`); code != 400 {
			t.Fatalf("a payout account that is no account: %d", code)
		}
		if code := put(e.token, `{"stripe_account": "acct_1Acme"}`); code != 200 {
			t.Fatalf("setting the payout account: %d", code)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/publisher/payout-account", nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got PayoutAccount
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 200 || got.StripeAccount != "acct_1Acme" {
			t.Fatalf("the payout account: %d %+v", resp.StatusCode, got)
		}

		res, err := e.pay.Sync(ctx)
		if err != nil || res != (SyncResult{Invoices: 1, Payouts: 1}) {
			t.Fatalf("Sync = %+v, %v", res, err)
		}
		var remote string
		if err := e.store.DB().GetContext(ctx, &remote, e.store.DB().Rebind(`SELECT provider_invoice FROM billing_invoice_payments
			WHERE invoice_id = ? AND status = 'open'`), e.inv); err != nil || !strings.HasPrefix(remote, "in_") {
			t.Fatalf("the invoice at Stripe: %q, %v", remote, err)
		}
		first := e.rec.take()
		want := []string{
			"POST /v1/customers relay-customer-" + e.w1.ID,
			"POST /v1/invoices relay-invoice-" + e.inv,
			"GET /v1/invoiceitems ",
			"POST /v1/invoiceitems relay-line-" + e.inv + "-1",
			"POST /v1/invoiceitems relay-line-" + e.inv + "-2",
			"POST /v1/invoices/" + remote + "/finalize relay-finalize-" + e.inv,
			"POST /v1/transfers relay-payout-acme-2030-01-USD",
		}
		if !slices.Equal(first, want) {
			t.Fatalf("requests to Stripe:\n%s\nwant\n%s", strings.Join(first, "\n"), strings.Join(want, "\n"))
		}
		if res, err := e.pay.Sync(ctx); err != nil || res != (SyncResult{}) || len(e.rec.take()) != 0 {
			t.Fatalf("a second sync: %+v, %v", res, err)
		}

		// A sync that stopped before the finalize: run again, it adds the
		// lines Stripe does not list, with the same keys, and finalizes.
		e.store.DB().MustExec(e.store.DB().Rebind(`UPDATE billing_invoice_payments SET status = 'draft' WHERE invoice_id = ?`), e.inv)
		if res, err := e.pay.Sync(ctx); err != nil || res.Invoices != 1 {
			t.Fatalf("the sync again: %+v, %v", res, err)
		}
		if again := e.rec.take(); !slices.Equal(again, want[2:6]) {
			t.Fatalf("requests of the sync again:\n%s\nwant\n%s", strings.Join(again, "\n"), strings.Join(want[2:6], "\n"))
		}
	})
}

// send posts a Stripe event of type about the Stripe invoice, signed with
// secret, and returns the answer's status and code.
func send(t *testing.T, base, id, typ, invoice, secret string) (int, string) {
	t.Helper()
	payload := fmt.Appendf(nil, `{"id": %q, "object": "event", "api_version": %q, "type": %q, "data": {"object": {"id": %q, "object": "invoice"}}}`,
		id, stripe.APIVersion, typ, invoice)
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
	req, _ := http.NewRequest(http.MethodPost, base+WebhookPath, bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", signed.Header)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var problem struct{ Code string }
	body, _ := io.ReadAll(resp.Body)
	json.Unmarshal(body, &problem)
	return resp.StatusCode, problem.Code
}

// A failed payment (a verified Stripe event) makes the workspace past due;
// after the grace period its runs of priced listings answer 402
// payment_required and its free ones run; paying makes it good again. A
// forged or replayed event changes nothing; an admin sees the standing.
func TestWebhookStanding(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.pay.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		var remote string
		if err := e.store.DB().GetContext(ctx, &remote, e.store.DB().Rebind(`SELECT provider_invoice FROM billing_invoice_payments
			WHERE invoice_id = ?`), e.inv); err != nil {
			t.Fatal(err)
		}
		hasher, _ := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{6}, 32))
		base := httpapitest.Serve(t, e.store, hasher, e.pay.Routes())
		admin := httpapitest.Key(t, e.store, hasher, e.w1.ID, core.RoleAdmin)
		developer := httpapitest.Key(t, e.store, hasher, e.w1.ID, core.RoleDeveloper)
		account := func(key string) (int, Account) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/billing/account", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a Account
			json.NewDecoder(resp.Body).Decode(&a)
			return resp.StatusCode, a
		}
		if code, a := account(admin); code != 200 || a.Status != "active" || !strings.HasPrefix(a.Customer, "cus_") {
			t.Fatalf("the account: %d %+v", code, a)
		}
		if code, _ := account(developer); code != 403 {
			t.Fatalf("a developer reads the account: %d", code)
		}
		// Another workspace's admin sees its own standing, none here.
		other, err := e.store.CreateWorkspace(ctx, "w2")
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := account(httpapitest.Key(t, e.store, hasher, other.ID, core.RoleAdmin)); code != 404 {
			t.Fatalf("another workspace's admin reads the account: %d", code)
		}

		// acme/leads is priced; relay/echo is not.
		e.store.DB().MustExec(e.store.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at) VALUES
			('acme/leads', '2030-01-01', '{"kind":"per_execution","currency":"USD","unit_amount":5}', ?)`), e.now)
		admit := func(pkg string) error {
			release, err := e.bill.Admit(ctx, &core.Run{ID: core.NewID(), WorkspaceID: e.w1.ID, Action: "leads.add", Package: pkg})
			if release != nil {
				release()
			}
			return err
		}

		if code, c := send(t, base, "evt_1", "invoice.payment_failed", remote, "whsec_forged"); code != 400 || c != core.EWebhookSignatureInvalid {
			t.Fatalf("a forged event: %d %s", code, c)
		}
		if code, a := account(admin); code != 200 || a.Status != "active" {
			t.Fatalf("after a forged event: %+v", a)
		}
		if code, _ := send(t, base, "evt_1", "invoice.payment_failed", remote, webhookSecret); code != 200 {
			t.Fatalf("invoice.payment_failed: %d", code)
		}
		code, a := account(admin)
		if code != 200 || a.Status != "past_due" || !a.PastDueSince.Equal(e.now) || !a.GraceUntil.Equal(e.now.Add(72*time.Hour)) {
			t.Fatalf("after a failed payment: %+v", a)
		}
		if err := admit("acme/leads"); err != nil {
			t.Fatalf("within the grace period: %v", err)
		}
		e.now = e.now.Add(72 * time.Hour)
		if err := admit("acme/leads"); core.ErrorCode(err) != core.EPaymentRequired {
			t.Fatalf("a priced run after the grace period: %v", err)
		}
		if err := admit(""); err != nil {
			t.Fatalf("a free run after the grace period: %v", err)
		}
		// Stripe delivers again, and an event of no Relay invoice.
		if code, _ := send(t, base, "evt_1", "invoice.payment_failed", remote, webhookSecret); code != 200 {
			t.Fatalf("a redelivered event: %d", code)
		}
		if code, _ := send(t, base, "evt_2", "invoice.paid", "in_someone_elses", webhookSecret); code != 200 {
			t.Fatalf("an event of another invoice: %d", code)
		}
		if err := admit("acme/leads"); core.ErrorCode(err) != core.EPaymentRequired {
			t.Fatalf("after events that change nothing: %v", err)
		}
		if code, _ := send(t, base, "evt_3", "invoice.paid", remote, webhookSecret); code != 200 {
			t.Fatalf("invoice.paid: %d", code)
		}
		if err := admit("acme/leads"); err != nil {
			t.Fatalf("after paying: %v", err)
		}
		// A failure reported after the payment (out of order) leaves it paid.
		if code, _ := send(t, base, "evt_4", "invoice.payment_failed", remote, webhookSecret); code != 200 {
			t.Fatalf("a late invoice.payment_failed: %d", code)
		}
		if _, a := account(admin); a.Status != "active" {
			t.Fatalf("after a late failure: %+v", a)
		}
		records, _, err := e.store.ListAudit(ctx, e.w1.ID, core.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range records {
			if strings.HasPrefix(r.Action, "billing.payment.") {
				actions = append(actions, r.Action)
			}
		}
		slices.Sort(actions)
		if !slices.Equal(actions, []string{"billing.payment.paid", "billing.payment.payment_failed"}) {
			t.Fatalf("audit records: %v", actions)
		}
	})
}

// Every route is in openapi.json with its role or token.
func TestRoutesDocumented(t *testing.T) {
	roles := map[string]string{
		"GET /v1/billing/account":          "admin",
		"GET /v1/publisher/payout-account": "publisher",
		"PUT /v1/publisher/payout-account": "publisher",
		"POST " + WebhookPath:              "none",
	}
	schemastest.CheckRoleTable(t, "payments", New(Config{Billing: &billing.Service{}, WebhookSecret: "x"}).Routes(), roles)
}

// The provider's response schemas name the fields it writes, and require
// those it always writes.
func TestResponseSchemasMatchTypes(t *testing.T) {
	schemastest.CheckSchemaTypes(t, map[string]any{"BillingAccount": Account{}, "PayoutAccount": PayoutAccount{}}, nil)
}
