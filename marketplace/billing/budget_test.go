package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// replica is one server's billing over its own connection pool.
type replica struct {
	st   *sqlstore.Store
	bill *Service
}

// budgetEnv opens n replicas of one database, migrated, with a priced
// package (acme/crm: 10 USD cents a run) and a workspace.
func budgetEnv(t *testing.T, url string, n int, cfg Config) ([]replica, *core.Workspace) {
	t.Helper()
	ctx := context.Background()
	var out []replica
	for range n {
		st, err := sqlstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		keyring, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32), st)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.DB, c.Secrets = st, keyring
		out = append(out, replica{st: st, bill: New(c)})
	}
	_, err := out[0].st.DB().ExecContext(ctx, out[0].st.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at)
		VALUES (?, ?, ?, ?)`), "acme/crm", "2000-01-01", `{"kind": "per_execution", "currency": "USD", "unit_amount": 10}`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ws, err := out[0].st.CreateWorkspace(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return out, ws
}

func adminOf(ws *core.Workspace) *core.Caller {
	return &core.Caller{WorkspaceID: ws.ID, KeyID: core.NewID(), Role: core.RoleAdmin, IP: "127.0.0.1"}
}

// execute runs what the engine does around a run: admit it, store it,
// finish it succeeded. It reports whether the run was admitted.
func execute(t *testing.T, r replica, ws *core.Workspace, installation string) (bool, error) {
	ctx := context.Background()
	run := &core.Run{ID: core.NewID(), WorkspaceID: ws.ID, Action: "crm.add", Connector: "crm", Package: "acme/crm", Version: "1.0.0",
		Runtime: "wasm", ConnectionID: core.NewID(), ConnectionName: "main", KeyID: core.NewID(), Status: core.RunRunning}
	if installation != "" {
		run.Action = installation + ".add"
		run.Preset = &core.RunPreset{Installation: installation, Template: "acme/kit", TemplateVersion: "1.0.0", Action: "crm.add"}
	}
	if _, err := r.bill.Admit(ctx, run); err != nil {
		return false, err
	}
	if _, err := r.st.StartExecution(ctx, run, nil, nil); err != nil {
		t.Error(err)
		return true, nil
	}
	run.Status = core.RunSucceeded
	if err := r.st.FinishExecution(ctx, run, "", 0, nil, nil); err != nil {
		t.Error(err)
	}
	return true, nil
}

// 100 runs at once with a hard budget for 10: exactly 10 run, the others
// are refused with budget_exceeded, on SQLite, and on PostgreSQL across
// two replicas; the spend is the budget, and it alerted at 80% and 100%,
// once each.
func TestBudgetRace(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			n := 1
			if db.Name == "postgres" {
				n = 2
			}
			ctx := context.Background()
			replicas, ws := budgetEnv(t, db.URL(t), n, Config{})
			if _, err := replicas[0].bill.SetBudget(ctx, adminOf(ws), WorkspaceScope, Budget{Currency: "USD", Amount: 100, Hard: true}); err != nil {
				t.Fatal(err)
			}
			var admitted, refused atomic.Int64
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Go(func() {
					ok, err := execute(t, replicas[i%n], ws, "")
					switch {
					case ok:
						admitted.Add(1)
					case core.ErrorCode(err) == core.EBudgetExceeded:
						refused.Add(1)
					default:
						t.Errorf("admit: %v", err)
					}
				})
			}
			wg.Wait()
			if admitted.Load() != 10 || refused.Load() != 90 {
				t.Fatalf("%d admitted, %d refused; want 10 and 90", admitted.Load(), refused.Load())
			}
			list, err := replicas[0].bill.Budgets(ctx, ws.ID)
			if err != nil || len(list) != 1 || *list[0].Spend != 100 {
				t.Fatalf("budgets: %+v, %v", list, err)
			}
			var alerts []int
			if err := replicas[0].st.DB().SelectContext(ctx, &alerts, `SELECT threshold FROM billing_alerts ORDER BY threshold`); err != nil ||
				len(alerts) != 2 || alerts[0] != 80 || alerts[1] != 100 {
				t.Fatalf("alerts %v, %v", alerts, err)
			}
			records, _, err := replicas[0].st.ListAudit(ctx, ws.ID, core.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var recorded int
			for _, r := range records {
				if r.Action == "billing.budget.alert" {
					recorded++
				}
			}
			if recorded != 2 {
				t.Errorf("%d alert audit records, want 2", recorded)
			}
		})
	}
}

// An installation's hard budget refuses only that installation's runs; a
// soft budget refuses nothing but alerts, and the alert is posted to the
// workspace's hook, signed.
func TestBudgetScopes(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			type post struct {
				sig  string
				body []byte
			}
			posts := make(chan post, 10)
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				posts <- post{r.Header.Get("Relay-Signature"), body}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer sink.Close()
			loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			replicas, ws := budgetEnv(t, db.URL(t), 1, Config{EgressAllow: loopback})
			r := replicas[0]
			admin := adminOf(ws)
			_, err := r.st.DB().ExecContext(ctx, r.st.DB().Rebind(`INSERT INTO marketplace_installations (id, workspace_id, name, template,
				version, lock, installed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), "in_sales", ws.ID, "sales", "acme/kit", "1.0.0", "{}",
				time.Now(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			// Refused: an unknown installation, a loopback hook without
			// the operator's allowance.
			_, err = r.bill.SetBudget(ctx, admin, "nowhere", Budget{Currency: "USD", Amount: 5})
			if core.ErrorCode(err) != core.ENotFound {
				t.Fatalf("a budget of no installation: %v", err)
			}
			strict := New(Config{DB: r.st, Secrets: r.bill.cfg.Secrets})
			if _, err := strict.SetAlertHook(ctx, admin, sink.URL); core.ErrorCode(err) != core.EEgressDenied {
				t.Fatalf("a loopback hook: %v", err)
			}
			hook, err := r.bill.SetAlertHook(ctx, admin, sink.URL+"/alerts")
			if err != nil || len(hook.Secret) < 30 {
				t.Fatalf("hook: %+v, %v", hook, err)
			}
			// The installation may spend 20 (by name), hard; the workspace
			// 50, soft.
			if _, err := r.bill.SetBudget(ctx, admin, "sales", Budget{Currency: "USD", Amount: 20, Hard: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.bill.SetBudget(ctx, admin, WorkspaceScope, Budget{Currency: "USD", Amount: 50}); err != nil {
				t.Fatal(err)
			}
			for i, want := range []bool{true, true, false} {
				ok, err := execute(t, r, ws, "in_sales")
				if ok != want || (!ok && core.ErrorCode(err) != core.EBudgetExceeded) {
					t.Fatalf("installation run %d: %v, %v; want admitted %v", i+1, ok, err, want)
				}
			}
			// The connector's own runs go on past the soft budget: 2 ran
			// as the installation's, 4 more make 60 of 50.
			for i := range 4 {
				if ok, err := execute(t, r, ws, ""); !ok {
					t.Fatalf("workspace run %d: %v", i+1, err)
				}
			}
			list, err := r.bill.Budgets(ctx, ws.ID)
			if err != nil || len(list) != 2 || list[0].Scope != "in_sales" || *list[0].Spend != 20 || *list[1].Spend != 60 {
				t.Fatalf("budgets: %+v, %v", list, err)
			}
			r.bill.Wait()
			close(posts)
			var got []alert
			secret := []byte(hook.Secret)
			for p := range posts {
				var a struct {
					Type string `json:"type"`
					alert
				}
				if err := json.Unmarshal(p.body, &a); err != nil || a.Type != "budget.alert" {
					t.Fatalf("post %s: %v", p.body, err)
				}
				// The signature is of the body as sent, at the time it says.
				var ts int64
				for _, part := range bytes.Split([]byte(p.sig), []byte(",")) {
					if v, ok := bytes.CutPrefix(part, []byte("t=")); ok {
						json.Unmarshal(v, &ts)
					}
				}
				if want := SignAlert(secret, time.Unix(ts, 0), p.body); p.sig != want {
					t.Errorf("signature %q, want %q", p.sig, want)
				}
				got = append(got, a.alert)
			}
			// The installation: 80% (16 of 20 at its second run) and 100%
			// (20); the workspace: 80% (40) and 100% (50).
			want := map[string]bool{"in_sales 80": true, "in_sales 100": true, "workspace 80": true, "workspace 100": true}
			if len(got) != len(want) {
				t.Fatalf("alerts posted: %+v", got)
			}
			for _, a := range got {
				if !want[a.Scope+" "+itoa(int64(a.Threshold))] || a.Workspace != ws.ID {
					t.Errorf("alert %+v", a)
				}
			}
			var undelivered int
			r.st.DB().GetContext(ctx, &undelivered, `SELECT COUNT(*) FROM billing_alerts WHERE delivered_at IS NULL`)
			if undelivered != 0 {
				t.Errorf("%d alerts not marked delivered", undelivered)
			}
		})
	}
}

// BenchmarkAdmitNoBudget is what the guard costs every execution of a
// workspace without budgets: a look in memory.
func BenchmarkAdmitNoBudget(b *testing.B) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstoretest.SQLiteURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	s := New(Config{DB: st})
	run := &core.Run{WorkspaceID: core.NewID(), Action: "crm.add", Package: "acme/crm"}
	if _, err := s.Admit(ctx, run); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Admit(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
}
