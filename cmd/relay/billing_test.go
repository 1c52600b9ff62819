package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/marketplace/billing"
)

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
			_, err = st.DB().ExecContext(ctx, st.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at) VALUES (?, ?, ?, ?)`),
				"acme/crm", "2000-01-01", `{"kind": "per_execution", "currency": "USD", "unit_amount": 7}`, now)
			if err != nil {
				t.Fatal(err)
			}
			run := &core.Run{WorkspaceID: ws.ID, Action: "crm.add", Connector: "crm", Package: "acme/crm", Version: "1.0.0", Runtime: "wasm",
				ConnectionID: core.NewID(), ConnectionName: "main", KeyID: core.NewID()}
			if _, err := st.StartExecution(ctx, run, nil, nil); err != nil {
				t.Fatal(err)
			}
			run.Status, run.FinishedAt = core.RunSucceeded, &last
			if err := st.FinishExecution(ctx, run, "", 0, nil, nil); err != nil {
				t.Fatal(err)
			}

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
