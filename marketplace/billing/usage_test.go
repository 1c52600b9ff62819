package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/httpapi/httpapitest"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// eachStore runs fn on a migrated store of each database.
func eachStore(t *testing.T, fn func(t *testing.T, st *sqlstore.Store)) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, db.URL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			fn(t, st)
		})
	}
}

// runOnce stores a run of action and finishes it at at.
func runOnce(t *testing.T, st *sqlstore.Store, workspaceID, action string, preset *core.RunPreset, status core.RunStatus, at time.Time) {
	t.Helper()
	ctx := context.Background()
	run := &core.Run{WorkspaceID: workspaceID, Action: action, Connector: "c", Version: "1.0.0", Runtime: "wasm",
		ConnectionID: core.NewID(), ConnectionName: "main", KeyID: core.NewID(), Package: "acme/c", Preset: preset}
	if _, err := st.StartExecution(ctx, run, nil, nil); err != nil {
		t.Fatal(err)
	}
	run.Status, run.FinishedAt = status, &at
	if status == core.RunFailed {
		run.Error = &core.RunError{Code: "upstream_failed", Message: "no"}
	}
	if err := st.FinishExecution(ctx, run, "", 0, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// GET /v1/usage: a workspace's succeeded runs by day, installation or
// action, and nobody else's; developers and admins read it, viewers and
// callers without a key do not.
func TestUsage(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		now := time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC)
		s := New(Config{DB: st, Now: func() time.Time { return now }})
		acme, err := st.CreateWorkspace(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		other, err := st.CreateWorkspace(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		sales := &core.RunPreset{Installation: "in_sales", Template: "acme/leads", TemplateVersion: "1.0.0", Action: "c.add"}
		day := func(d int) time.Time { return time.Date(2026, 12, d, 10, 0, 0, 0, time.UTC) }
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, day(1))
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, day(1))
		runOnce(t, st, acme.ID, "c.add", nil, core.RunFailed, day(1))
		runOnce(t, st, acme.ID, "sales.jot", sales, core.RunSucceeded, day(3))
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, time.Date(2026, 11, 30, 23, 59, 59, 999e6, time.UTC))
		runOnce(t, st, other.ID, "c.add", nil, core.RunSucceeded, day(1))

		for _, c := range []struct {
			q     UsageQuery
			want  []UsageGroup
			query UsageQuery
		}{
			{UsageQuery{}, []UsageGroup{{Day: "2026-12-01", Runs: 2}, {Day: "2026-12-03", Runs: 1}},
				UsageQuery{From: "2026-12-01", To: "2026-12-20", GroupBy: "day"}},
			{UsageQuery{From: "2026-11-30", To: "2026-12-02", GroupBy: "day"},
				[]UsageGroup{{Day: "2026-11-30", Runs: 1}, {Day: "2026-12-01", Runs: 2}}, UsageQuery{}},
			{UsageQuery{From: "2026-11-01", To: "2026-12-31", GroupBy: "action"},
				[]UsageGroup{{Action: "c.add", Runs: 3}, {Action: "sales.jot", Runs: 1}}, UsageQuery{}},
			{UsageQuery{GroupBy: "installation"},
				[]UsageGroup{{Installation: "", Runs: 2}, {Installation: "in_sales", Runs: 1}}, UsageQuery{}},
			{UsageQuery{From: "2027-01-01", To: "2027-01-31"}, []UsageGroup{}, UsageQuery{}},
		} {
			got, q, err := s.Usage(ctx, acme.ID, c.q)
			if err != nil {
				t.Fatalf("%+v: %v", c.q, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%+v: %+v, want %+v", c.q, got, c.want)
			}
			if c.query != (UsageQuery{}) && q != c.query {
				t.Errorf("%+v: answered for %+v, want %+v", c.q, q, c.query)
			}
		}
		for _, q := range []UsageQuery{
			{From: "2026-12-1"}, {To: "yesterday"}, {From: "2026-12-05", To: "2026-12-04"},
			{From: "2025-01-01", To: "2026-12-31"}, {GroupBy: "week"},
		} {
			_, _, err := s.Usage(ctx, acme.ID, q)
			if core.ErrorCode(err) != core.EInvalid {
				t.Errorf("%+v: %v, want invalid_request", q, err)
			}
		}

		// Over HTTP, with each role.
		hasher, _ := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{7}, 32))
		base := httpapitest.Serve(t, st, hasher, s.Routes())
		key := func(ws string, role core.Role) string { return httpapitest.Key(t, st, hasher, ws, role) }
		get := func(token string) (int, []UsageGroup) {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/usage?group_by=action", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Data []UsageGroup `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out.Data
		}
		want := []UsageGroup{{Action: "c.add", Runs: 2}, {Action: "sales.jot", Runs: 1}}
		for role, status := range map[core.Role]int{core.RoleAdmin: 200, core.RoleDeveloper: 200, core.RoleViewer: 403} {
			got, data := get(key(acme.ID, role))
			if got != status || (status == 200 && !reflect.DeepEqual(data, want)) {
				t.Errorf("%s: %d %+v, want %d", role, got, data, status)
			}
		}
		if got, _ := get(""); got != http.StatusUnauthorized {
			t.Errorf("no key: %d", got)
		}
		if got, data := get(key(other.ID, core.RoleAdmin)); got != 200 || !reflect.DeepEqual(data, []UsageGroup{{Action: "c.add", Runs: 1}}) {
			t.Errorf("the other workspace: %d %+v", got, data)
		}
	})
}

// A usage report's spend: what each day's (or installation's) runs added
// to their month's spend, by currency, with free allowances and tiers
// counted from the month's first run whatever the range asked.
func TestUsageSpend(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		now := time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC)
		s := New(Config{DB: st, Now: func() time.Time { return now }})
		for listing, plan := range map[string]string{
			"acme/c":     `{"kind": "per_execution", "currency": "USD", "unit_amount": 10, "free_allowance": 2}`,
			"acme/leads": `{"kind": "tiered", "currency": "EUR", "tiers": [{"up_to": 1, "unit_amount": 100}, {"up_to": null, "unit_amount": 50}]}`,
			"acme/desk":  `{"kind": "monthly", "currency": "USD", "monthly_amount": 3000}`,
		} {
			_, err := st.DB().ExecContext(ctx, st.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at)
				VALUES (?, ?, ?, ?)`), listing, "2000-01-01", plan, now)
			if err != nil {
				t.Fatal(err)
			}
		}
		acme, err := st.CreateWorkspace(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		sales := &core.RunPreset{Installation: "in_sales", Template: "acme/leads", TemplateVersion: "1.0.0", Action: "c.add"}
		day := func(d int) time.Time { return time.Date(2026, 12, d, 10, 0, 0, 0, time.UTC) }
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, day(1)) // the free allowance: 2 runs
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, day(1))
		runOnce(t, st, acme.ID, "sales.jot", sales, core.RunSucceeded, day(3)) // 10 USD, the first tier: 100 EUR
		runOnce(t, st, acme.ID, "sales.jot", sales, core.RunSucceeded, day(4)) // 2 × 10 USD, 2 × 50 EUR
		runOnce(t, st, acme.ID, "sales.jot", sales, core.RunSucceeded, day(4))
		runOnce(t, st, acme.ID, "c.add", nil, core.RunSucceeded, day(4)) // 10 USD
		runOnce(t, st, acme.ID, "c.add", nil, core.RunFailed, day(5))    // not counted

		type money = map[string]int64
		for _, c := range []struct {
			q    UsageQuery
			want []UsageGroup
		}{
			{UsageQuery{}, []UsageGroup{{Day: "2026-12-01", Runs: 2}, {Day: "2026-12-03", Runs: 1, Spend: money{"USD": 10, "EUR": 100}},
				{Day: "2026-12-04", Runs: 3, Spend: money{"USD": 30, "EUR": 100}}}},
			// A range that starts mid-month counts the month's runs before it.
			{UsageQuery{From: "2026-12-04", To: "2026-12-04"}, []UsageGroup{{Day: "2026-12-04", Runs: 3, Spend: money{"USD": 30, "EUR": 100}}}},
			{UsageQuery{From: "2026-11-30", To: "2026-12-03"}, []UsageGroup{{Day: "2026-11-30", Runs: 1}, {Day: "2026-12-01", Runs: 2},
				{Day: "2026-12-03", Runs: 1, Spend: money{"USD": 10, "EUR": 100}}}},
			{UsageQuery{GroupBy: "installation"}, []UsageGroup{{Installation: "", Runs: 3, Spend: money{"USD": 10}},
				{Installation: "in_sales", Runs: 3, Spend: money{"USD": 30, "EUR": 200}}}},
			{UsageQuery{From: "2026-12-04", To: "2026-12-31", GroupBy: "installation"}, []UsageGroup{{Installation: "", Runs: 1, Spend: money{"USD": 10}},
				{Installation: "in_sales", Runs: 2, Spend: money{"USD": 20, "EUR": 100}}}},
			// By action, spend is not given: allowances and tiers are a
			// listing's, shared by its actions.
			{UsageQuery{GroupBy: "action"}, []UsageGroup{{Action: "c.add", Runs: 3}, {Action: "sales.jot", Runs: 3}}},
		} {
			got, _, err := s.Usage(ctx, acme.ID, c.q)
			if err != nil {
				t.Fatalf("%+v: %v", c.q, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%+v:\n got %+v\nwant %+v", c.q, got, c.want)
			}
		}
		// The month's days add up to its spend as a budget sees it.
		if _, err := s.SetBudget(ctx, adminOf(acme), WorkspaceScope, Budget{Currency: "USD", Amount: 1000}); err != nil {
			t.Fatal(err)
		}
		if budgets, err := s.Budgets(ctx, acme.ID); err != nil || len(budgets) != 1 || *budgets[0].Spend != 10+30 {
			t.Errorf("budgets = %+v, %v; want a spend of 40", budgets, err)
		}
	})
}
