package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/client"
)

// The Go client (sdk/client) against a whole server, beyond the actions
// (TestGoClient in core/httpapi): the probes and the document, the
// registry as an operator and as a publisher (with its token), the
// marketplace, usage, budgets, the alert hook, invoices and the standing.
func TestGoClientAllAreas(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir(), StripeKey: "sk_test_client",
		StripeAPIURL: "http://127.0.0.1:9"}
	m, banner := startMain(t, cfg, io.Discard)
	relay := client.New(m.URL(), keyRE.FindString(banner), nil)
	code := func(err error) string {
		var e *client.Error
		if errors.As(err, &e) {
			return e.Code
		}
		return ""
	}

	if err := relay.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := relay.Ready(ctx); err != nil || r.Status != "ok" {
		t.Fatalf("Ready = %+v, %v", r, err)
	}
	if metrics, err := relay.Metrics(ctx); err != nil || !strings.Contains(string(metrics), "# TYPE") {
		t.Fatalf("Metrics: %v", err)
	}
	if doc, err := relay.OpenAPI(ctx); err != nil || !json.Valid(doc) || !strings.Contains(string(doc), `"operationId": "executeAction"`) {
		t.Fatalf("OpenAPI: %v", err)
	}

	// The registry, as the operator and then as the publisher.
	if lock, err := relay.ConnectorLock(ctx); err != nil || len(lock) != 0 {
		t.Fatalf("ConnectorLock = %+v, %v", lock, err)
	}
	if page, err := relay.ListPackages(ctx, "", "", 10, ""); err != nil || page.Data == nil {
		t.Fatalf("ListPackages = %+v, %v", page, err)
	}
	pub, _, _ := minisign.GenerateKey(nil)
	reg, err := relay.RegisterPublisher(ctx, "acme", "Acme", relaypkg.PublicKeyLine(pub))
	if err != nil || reg.Publisher.Name != "acme" || !strings.HasPrefix(reg.Token, "rpt_") {
		t.Fatalf("RegisterPublisher = %+v, %v", reg, err)
	}
	acme := client.New(m.URL(), reg.Token, nil)
	second, _, _ := minisign.GenerateKey(nil)
	key, err := acme.AddPublisherKey(ctx, "acme", relaypkg.PublicKeyLine(second))
	if err != nil {
		t.Fatal(err)
	}
	if err := acme.RevokePublisherKey(ctx, "acme", key.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := relay.Publisher(ctx, "acme"); err != nil || len(p.Keys) != 2 || (p.Keys[0].RevokedAt == nil) == (p.Keys[1].RevokedAt == nil) {
		t.Fatalf("Publisher = %+v, %v", p, err)
	}
	up, err := acme.CreateUpload(ctx)
	if err != nil || up.ID == "" {
		t.Fatalf("CreateUpload = %+v, %v", up, err)
	}
	if part, err := acme.UploadPart(ctx, up.ID, 1, []byte("not yet a package")); err != nil || part.Size != 17 {
		t.Fatalf("UploadPart = %+v, %v", part, err)
	}
	if _, err := acme.PayoutAccount(ctx); code(err) != "not_found" {
		t.Fatalf("PayoutAccount before one is set: %v", err)
	}
	if a, err := acme.SetPayoutAccount(ctx, "acct_1Acme"); err != nil || a.StripeAccount != "acct_1Acme" {
		t.Fatalf("SetPayoutAccount = %+v, %v", a, err)
	}
	if st, err := acme.ListStatements(ctx, "2026-11"); err != nil || len(st) != 0 {
		t.Fatalf("ListStatements = %+v, %v", st, err)
	}
	if _, err := relay.Package(ctx, "acme/none"); code(err) != "not_found" {
		t.Fatalf("a missing package: %v", err)
	}

	// The marketplace.
	if page, err := relay.SearchTemplates(ctx, client.TemplateQuery{Query: "leads"}); err != nil || page.Sort != "relevance" {
		t.Fatalf("SearchTemplates = %+v, %v", page, err)
	}
	if list, err := relay.ListInstallations(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListInstallations = %+v, %v", list, err)
	}
	if _, err := relay.Template(ctx, "acme/none"); code(err) != "not_found" {
		t.Fatalf("a missing template: %v", err)
	}

	// Billing.
	if u, err := relay.Usage(ctx, "", "", "day"); err != nil || u.GroupBy != "day" {
		t.Fatalf("Usage = %+v, %v", u, err)
	}
	if inv, err := relay.ListInvoices(ctx); err != nil || len(inv) != 0 {
		t.Fatalf("ListInvoices = %+v, %v", inv, err)
	}
	if b, err := relay.SetBudget(ctx, "workspace", "USD", 1000, true); err != nil || !b.Hard {
		t.Fatalf("SetBudget = %+v, %v", b, err)
	}
	if list, err := relay.ListBudgets(ctx); err != nil || len(list) != 1 || list[0].Spend == nil {
		t.Fatalf("ListBudgets = %+v, %v", list, err)
	}
	if err := relay.DeleteBudget(ctx, "workspace"); err != nil {
		t.Fatal(err)
	}
	if h, err := relay.SetAlertHook(ctx, "https://hooks.example.com/relay"); err != nil || h.Secret == "" {
		t.Fatalf("SetAlertHook = %+v, %v", h, err)
	}
	if h, err := relay.AlertHook(ctx); err != nil || h.Secret != "" || h.URL != "https://hooks.example.com/relay" {
		t.Fatalf("AlertHook = %+v, %v", h, err)
	}
	if err := relay.DeleteAlertHook(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.BillingAccount(ctx); code(err) != "not_found" {
		t.Fatalf("BillingAccount before any invoice: %v", err)
	}
	if p, err := relay.Price(ctx, "acme/none"); code(err) != "not_found" {
		t.Fatalf("the price of a missing listing: %+v, %v", p, err)
	}
}
