package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/marketplace/billing/payments"
)

// relay serve --stripe-key: a closed month's invoice goes to Stripe
// (stripe-mock) by itself, and Stripe's signed event of a failed payment
// makes the workspace past due, which its admin reads; a forged event
// changes nothing.
func TestStripeOverHTTP(t *testing.T) {
	mock := os.Getenv(payments.StripeMockEnv)
	if mock == "" {
		t.Skip(payments.StripeMockEnv + " not set: skipping the Stripe tests (see README)")
	}
	const secret = "whsec_e2e"
	// Flags that cannot work are refused before anything starts.
	for _, args := range [][]string{{"--stripe-webhook-secret", secret}, {"--stripe-key", "sk_test_e2e", "--payment-grace", "0s"}} {
		_, err := relay(t, Config{DataDir: t.TempDir()}, append([]string{"serve"}, args...)...)
		if exitCode(err) != 2 {
			t.Errorf("relay serve %q: %v (exit %d), want exit 2", args, err, exitCode(err))
		}
	}
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir(), StripeKey: "sk_test_e2e",
				StripeWebhookSecret: secret, StripeAPIURL: mock, stripeSyncEvery: 100 * time.Millisecond}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			// Last month: a run of a priced package, in a store the server
			// then starts on, which closes the month.
			st, err := openStore(ctx, cfg, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			ws, err := st.CreateWorkspace(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			last := time.Date(now.Year(), now.Month()-1, 10, 12, 0, 0, 0, time.UTC)
			pricedRun(t, st, ws.ID, last)
			st.Close()

			m, _ := startMain(t, cfg, io.Discard)
			h := &httpClient{t: t, base: m.URL()}
			out, err := relay(t, cfg, "keys", "create", "--workspace", "acme", "--role", "admin")
			if err != nil {
				t.Fatal(err)
			}
			admin := strings.TrimSpace(out)
			db := m.store.DB()
			var remote string
			for deadline := time.Now().Add(20 * time.Second); remote == ""; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the closed invoice did not reach Stripe")
				}
				db.Get(&remote, `SELECT provider_invoice FROM billing_invoice_payments WHERE status = 'open'`)
			}

			post := func(secret string) int {
				payload := fmt.Appendf(nil, `{"id": "evt_e2e", "object": "event", "api_version": %q, "type": "invoice.payment_failed",
					"data": {"object": {"id": %q, "object": "invoice"}}}`, stripe.APIVersion, remote)
				signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
				req, _ := http.NewRequest(http.MethodPost, m.URL()+payments.WebhookPath, bytes.NewReader(payload))
				req.Header.Set("Stripe-Signature", signed.Header)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := post("whsec_forged"); code != 400 {
				t.Fatalf("a forged event: %d", code)
			}
			var account payments.Account
			h.json("GET", "/v1/billing/account", admin, nil, 200, &account)
			if account.Status != "active" {
				t.Fatalf("after a forged event: %+v", account)
			}
			if code := post(secret); code != 200 {
				t.Fatalf("a signed event: %d", code)
			}
			h.json("GET", "/v1/billing/account", admin, nil, 200, &account)
			if account.Status != "past_due" || account.GraceUntil == nil || !account.GraceUntil.Equal(account.PastDueSince.Add(billing.DefaultPaymentGrace)) {
				t.Fatalf("after a failed payment: %+v", account)
			}
		})
	}
}
