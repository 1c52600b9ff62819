package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/registry/relaypkg"
)

// pricedRun stores a succeeded run of acme/crm, priced at 7 US cents a
// run, in workspaceID, finished at at.
func pricedRun(t *testing.T, st *sqlstore.Store, workspaceID string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	_, err := st.DB().ExecContext(ctx, st.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (listing, effective_from) DO NOTHING`),
		"acme/crm", "2000-01-01", `{"kind": "per_execution", "currency": "USD", "unit_amount": 7}`, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	run := &core.Run{WorkspaceID: workspaceID, Action: "crm.add", Connector: "crm", Package: "acme/crm", Version: "1.0.0", Runtime: "wasm",
		ConnectionID: core.NewID(), ConnectionName: "main", KeyID: core.NewID()}
	if _, err := st.StartExecution(ctx, run, nil, nil); err != nil {
		t.Fatal(err)
	}
	run.Status, run.FinishedAt = core.RunSucceeded, &at
	if err := st.FinishExecution(ctx, run, "", 0, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// relay billing close-period closes last month into invoices and
// statements, once, on SQLite and PostgreSQL; a month that has not ended,
// a malformed one and a fee out of range are refused.
func TestBillingClosePeriodCLI(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			a := newAdminDB(t, db)
			st := a.open(t)
			ctx := context.Background()
			ws, err := st.CreateWorkspace(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			// A run of a priced package, finished last month.
			now := time.Now().UTC()
			last := time.Date(now.Year(), now.Month()-1, 10, 12, 0, 0, 0, time.UTC)
			period := last.Format("2006-01")
			pricedRun(t, st, ws.ID, last)

			out, err := a.relay("billing", "close-period", period, "--platform-fee-percent", "12.5")
			if err != nil || !strings.Contains(out, "closed "+period+": 1 invoice, 1 publisher statement") {
				t.Fatalf("close-period: %q, %v", out, err)
			}
			out, err = a.relay("billing", "close-period", period, "-o", "json")
			var res []billing.CloseResult
			if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].Closed {
				t.Fatalf("closing again: %q, %v", out, err)
			}
			statements, err := billing.New(billing.Config{DB: st}).Statements(ctx, "acme", period)
			// 7 gross at 12.5%: 0.875, so 1.
			if err != nil || len(statements) != 1 || statements[0].Gross != 7 || statements[0].Fee != 1 || statements[0].FeeBasisPoints != 1250 {
				t.Fatalf("statements: %+v, %v", statements, err)
			}

			// A correction: a credit note of 3 of the invoice's 7.
			invoices, err := billing.New(billing.Config{DB: st}).Invoices(ctx, ws.ID)
			if err != nil || len(invoices) != 1 {
				t.Fatalf("invoices: %+v, %v", invoices, err)
			}
			out, err = a.relay("billing", "credit-note", invoices[0].ID, "--line", "1=3", "--reason", "a run billed twice")
			if err != nil || !strings.Contains(out, "0.03 USD on invoice "+invoices[0].ID) {
				t.Fatalf("credit-note: %q, %v", out, err)
			}
			if _, err := a.relay("billing", "credit-note", invoices[0].ID, "--line", "1=5", "--reason", "more"); err == nil ||
				!strings.Contains(err.Error(), "credit 1 to 4") {
				t.Fatalf("crediting past the line: %v", err)
			}
			if _, err := a.relay("billing", "credit-note", invoices[0].ID, "--line", "1=x", "--reason", "bad"); exitCode(err) != 2 {
				t.Fatalf("a malformed line: %v", err)
			}

			for _, c := range []struct {
				args []string
				code int
				says string
			}{
				{[]string{now.Format("2006-01")}, 1, "has not ended"},
				{[]string{"2026-13"}, 1, "want a month"},
				{nil, 2, "usage"},
				{[]string{period, "--platform-fee-percent", "101"}, 2, "more than 100%"},
				{[]string{period, "--platform-fee-percent", "0.125"}, 2, "two decimals"},
			} {
				_, err := a.relay(append([]string{"billing", "close-period"}, c.args...)...)
				if exitCode(err) != c.code || err == nil || !strings.Contains(err.Error(), c.says) {
					t.Errorf("%q: %v (exit %d), want exit %d saying %q", c.args, err, exitCode(err), c.code, c.says)
				}
			}
		})
	}
}

// Through real servers: with acme/vault priced at 10 cents a run and a
// hard budget of a dollar, 30 executions at once, spread over the
// replicas (two on PostgreSQL), run exactly 10 times; the rest answer 402
// budget_exceeded, and the usage and the budget's spend agree.
func TestBudgetOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs connectors")
	}
	pkg := vaultPackages(t, "1.0.0")["1.0.0"]
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			m, banner := startMain(t, cfg, io.Discard)
			admin := keyRE.FindString(banner)
			servers := []*httpClient{{t: t, base: m.URL()}}
			if db.Name != "sqlite" {
				// A second replica: the same database and master key.
				second := cfg
				second.DataDir = filepath.Join(t.TempDir(), "relay-data")
				second.MasterKeyFile = filepath.Join(cfg.DataDir, "master.key")
				m2, _ := startMain(t, second, io.Discard)
				servers = append(servers, &httpClient{t: t, base: m2.URL()})
			}
			h := servers[0]
			pub, priv, _ := minisign.GenerateKey(nil)
			var reg struct{ Token string }
			h.json("POST", "/v1/registry/publishers", admin, map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
			h.publish(reg.Token, pkg, priv)
			h.json("POST", "/v1/connectors/install", admin, map[string]string{"package": "acme/vault"}, 201, nil)
			h.json("POST", "/v1/connections", admin, map[string]any{"connector": "vault", "name": "main",
				"secrets": map[string]string{"token": "t0ken"}}, 201, nil)
			// A price takes effect on a first of a month at least 14 days
			// out: this one has been in effect for long.
			_, err := m.store.DB().ExecContext(ctx, m.store.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at)
				VALUES (?, ?, ?, ?)`), "acme/vault", "2000-01-01", `{"kind": "per_execution", "currency": "USD", "unit_amount": 10}`, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			h.json("PUT", "/v1/billing/budgets/workspace", admin, map[string]any{"currency": "USD", "amount": 100, "hard": true}, 200, nil)
			// Every replica reads budgets at most 2 s old.
			time.Sleep(2100 * time.Millisecond)

			var mu sync.Mutex
			statuses := map[string]int{}
			var wg sync.WaitGroup
			for i := range 30 {
				wg.Go(func() {
					body := strings.NewReader(`{"params": {}}`)
					req, _ := http.NewRequest("POST", servers[i%len(servers)].base+"/v1/actions/vault.keys/execute", body)
					req.Header.Set("Authorization", "Bearer "+admin)
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					var p struct{ Code string }
					json.NewDecoder(resp.Body).Decode(&p)
					mu.Lock()
					statuses[strconv.Itoa(resp.StatusCode)+" "+p.Code]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if len(statuses) != 2 || statuses["200 "] != 10 || statuses["402 budget_exceeded"] != 20 {
				t.Fatalf("answers: %v; want 10 × 200 and 20 × 402 budget_exceeded", statuses)
			}
			var budgets struct {
				Data []struct{ Spend int64 }
			}
			h.json("GET", "/v1/billing/budgets", admin, nil, 200, &budgets)
			var usage struct {
				Data []struct{ Runs int64 }
			}
			h.json("GET", "/v1/usage?group_by=action", admin, nil, 200, &usage)
			if len(budgets.Data) != 1 || budgets.Data[0].Spend != 100 || len(usage.Data) != 1 || usage.Data[0].Runs != 10 {
				t.Fatalf("budgets %+v, usage %+v", budgets, usage)
			}
		})
	}
}
