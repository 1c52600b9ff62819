package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// Migrations 0013 to 0016 on a store in use: runs that ended before them
// are not counted (usage starts with the meter), billing opens with no
// month closed, a statement written before 0016 reads as having no
// credits and nothing carried, and a run that ends after is counted.
func TestMigrations0013To0016OnAStoreInUse(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s := migratedTo(t, databaseURL, 12)
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, now)
		s.must(`INSERT INTO runs (id, workspace_id, action, connector, version, runtime, connection_id, connection_name, key_id,
			idempotency_key, status, params, created_at, finished_at) VALUES ('01jf0000000000000000000000', 'ws1', 'echo.echo', 'echo',
			'1.0.0', 'wasm', 'c1', 'main', 'k1', '', 'succeeded', '{}', ?, ?)`, now, now)
		if err := s.apply(12, 15); err != nil {
			t.Fatalf("migrations 0013 to 0015: %v", err)
		}
		s.must(`INSERT INTO billing_statements (publisher, period, currency, gross, fee, net, fee_basis_points, listings, created_at)
			VALUES ('acme', '2029-12', 'USD', 10, 2, 8, 2000, '[]', ?)`, now)
		if err := s.apply(15, 16); err != nil {
			t.Fatalf("migration 0016: %v", err)
		}
		var credits, carried int64
		if err := s.db.QueryRowContext(ctx, `SELECT credits, carried FROM billing_statements`).Scan(&credits, &carried); err != nil ||
			credits != 0 || carried != 0 {
			t.Fatalf("an earlier statement: credits %d, carried %d, %v", credits, carried, err)
		}
		if open, err := s.OpenUsagePeriod(ctx); err != nil || open != "0000-01" {
			t.Fatalf("open period %q, %v", open, err)
		}
		if n := countRows(t, s.Store, "usage_daily"); n != 0 {
			t.Fatalf("%d usage rows for runs that ended before the meter", n)
		}
		if err := finishAt(t, s.Store, newRun("ws1", "echo.echo"), core.RunSucceeded, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := usageIn(t, s.Store, "2030-01"); n != 1 {
			t.Fatalf("a run after the migrations counted %d times", n)
		}
	})
}

// Migration 0017 on a store in use: what is installed is held from when
// it was installed: a template's installation holds the template and its
// connectors' packages (not the server's own), and a connector installed
// from the registry its package.
func TestMigration0017HoldsWhatIsInstalled(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s := migratedTo(t, databaseURL, 16)
		then := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, then)
		s.must(`INSERT INTO marketplace_installations (id, workspace_id, name, template, version, lock, installed_at, updated_at)
			VALUES ('in1', 'ws1', 'kit', 'acme/kit', '1.0.0', ?, ?, ?)`,
			`{"template":"acme/kit","connectors":[{"name":"notes","package":"acme/notes"},{"name":"echo","package":"","builtin":true}]}`,
			then, then)
		s.must(`INSERT INTO registry_installs (workspace_id, name, package, version, package_sha256, artifacts, signer_key_id,
			capabilities, installed_at, updated_at) VALUES ('ws1', 'mail', 'acme/mail', '1.0.0', '', '{}', '', '{}', ?, ?)`, then, then)
		if err := s.apply(16, 17); err != nil {
			t.Fatalf("migration 0017: %v", err)
		}
		var got []struct {
			Listing string    `db:"listing"`
			Holder  string    `db:"holder"`
			Started time.Time `db:"started_at"`
		}
		if err := s.db.SelectContext(ctx, &got, `SELECT listing, holder, started_at FROM billing_holdings
			WHERE ended_at IS NULL ORDER BY listing`); err != nil {
			t.Fatal(err)
		}
		want := [][2]string{{"acme/kit", "installation:in1"}, {"acme/mail", "connector:mail"}, {"acme/notes", "installation:in1"}}
		if len(got) != len(want) {
			t.Fatalf("holdings %+v, want %v", got, want)
		}
		for i, w := range want {
			if got[i].Listing != w[0] || got[i].Holder != w[1] || !got[i].Started.Equal(then) {
				t.Fatalf("holdings %+v, want %v since %s", got, want, then)
			}
		}
	})
}

// Migration 0018 on a store with closed months: invoices made before it
// are sent to a payment provider as any other (a payment row can name
// one), and no workspace has a standing until its first invoice is sent.
func TestMigration0018OnAStoreInUse(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		s := migratedTo(t, databaseURL, 17)
		then := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, then)
		s.must(`INSERT INTO billing_invoices (id, workspace_id, period, currency, total, created_at) VALUES ('inv1', 'ws1', '2029-12', 'USD', 700, ?)`, then)
		if err := s.apply(17, 18); err != nil {
			t.Fatalf("migration 0018: %v", err)
		}
		if n := countRows(t, s.Store, "billing_accounts"); n != 0 {
			t.Fatalf("%d standings after the migration", n)
		}
		s.must(`INSERT INTO billing_invoice_payments (invoice_id, workspace_id, provider_invoice, status, updated_at)
			VALUES ('inv1', 'ws1', 'in_1', 'open', ?)`, then)
		if _, err := s.db.Exec(s.db.Rebind(`INSERT INTO billing_invoice_payments (invoice_id, workspace_id, provider_invoice, status, updated_at)
			VALUES ('inv-none', 'ws1', 'in_2', 'open', ?)`), then); err == nil {
			t.Fatal("a payment of no invoice was stored")
		}
	})
}

// Migrations 0019 (erasures), 0020 (run retention) and 0021 (audit and
// idempotency retention) on a store in use: its workspaces keep the
// server's retention until one is set, and can be erased.
func TestMigrations0019To0021OnAStoreInUse(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		s := migratedTo(t, databaseURL, 18)
		then := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, then)
		if err := s.apply(18, 21); err != nil {
			t.Fatalf("migrations 0019 to 0021: %v", err)
		}
		ctx := context.Background()
		ws, err := s.Workspace(ctx, "ws1")
		if err != nil || ws.RunDays != nil || ws.AuditDays != nil || ws.IdempotencyHours != nil || ws.Name != "acme" {
			t.Fatalf("the workspace after the migrations: %+v, %v", ws, err)
		}
		days := 30
		if err := s.UpdateWorkspaceRetention(ctx, "ws1", core.RetentionUpdate{Retention: core.Retention{RunDays: &days, AuditDays: &days, IdempotencyHours: &days},
			SetRunDays: true, SetAuditDays: true, SetIdempotencyHours: true}); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s.Store, "workspace_erasures"); n != 0 {
			t.Fatalf("%d erasures after the migration", n)
		}
	})
}
