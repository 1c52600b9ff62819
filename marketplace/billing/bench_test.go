package billing

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// fillUsage writes usage_daily rows for January 2030: for each of
// workspaces, days × actions rows of installation "" and package
// acme/crm, each of runs runs, in batched inserts (the meter's rollups,
// without running anything).
func fillUsage(b *testing.B, st *sqlstore.Store, workspaces, days, actions int, runs int64) {
	b.Helper()
	ctx := context.Background()
	db := st.DB()
	const batch = 500
	var rows []string
	var args []any
	flush := func() {
		if len(rows) == 0 {
			return
		}
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO usage_daily (workspace_id, period, day, package, template, installation,
			action, connector_action, runs) VALUES `+strings.Join(rows, ", ")), args...)
		if err != nil {
			b.Fatal(err)
		}
		rows, args = rows[:0], args[:0]
	}
	for w := range workspaces {
		for d := 1; d <= days; d++ {
			for a := range actions {
				rows = append(rows, "(?, ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, fmt.Sprintf("ws%06d", w), "2030-01", fmt.Sprintf("2030-01-%02d", d), "acme/crm", "", "",
					fmt.Sprintf("crm.a%d", a), fmt.Sprintf("a%d", a), runs)
				if len(rows) == batch {
					flush()
				}
			}
		}
	}
	flush()
}

func openBench(b *testing.B, db sqlstoretest.Database) *sqlstore.Store {
	b.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, db.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkUsageMonth reads a month of one workspace's usage, a million
// runs in 31 days × 40 actions of daily rollups, among 20 other
// workspaces' as large, grouped each way GET /v1/usage does.
func BenchmarkUsageMonth(b *testing.B) {
	for _, db := range sqlstoretest.Databases() {
		b.Run(db.Name, func(b *testing.B) {
			st := openBench(b, db)
			fillUsage(b, st, 21, 31, 40, 807) // 31 × 40 × 807 = 1,000,680 runs each
			s := New(Config{DB: st, Now: func() time.Time { return time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC) }})
			groups := func(prefix string) {
				for _, group := range []string{"day", "installation", "action"} {
					b.Run(prefix+group, func(b *testing.B) {
						q := UsageQuery{From: "2030-01-01", To: "2030-01-31", GroupBy: group}
						for b.Loop() {
							out, _, err := s.Usage(context.Background(), "ws000007", q)
							if err != nil || len(out) == 0 {
								b.Fatal(out, err)
							}
						}
					})
				}
			}
			groups("")
			// Priced, the day and installation groups have their spend.
			_, err := st.DB().ExecContext(context.Background(), st.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at)
				VALUES (?, ?, ?, ?)`), "acme/crm", "2000-01-01",
				`{"kind": "per_execution", "currency": "USD", "unit_amount": 3, "per_units": 2, "free_allowance": 50, "actions": {"a3": 7}}`, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			groups("priced/")
		})
	}
}

// BenchmarkClosePeriod closes a month of a million usage rows (10,000
// workspaces × 10 days × 10 actions of a priced package) into invoices
// and statements. Run it once: -benchtime 1x.
func BenchmarkClosePeriod(b *testing.B) {
	for _, db := range sqlstoretest.Databases() {
		b.Run(db.Name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				st := openBench(b, db)
				fillUsage(b, st, 10_000, 10, 10, 3)
				_, err := st.DB().ExecContext(ctx, st.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at)
					VALUES (?, ?, ?, ?)`), "acme/crm", "2000-01-01",
					`{"kind": "per_execution", "currency": "USD", "unit_amount": 3, "per_units": 2, "free_allowance": 50, "actions": {"a3": 7}}`, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				s := New(Config{DB: st, Now: func() time.Time { return time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC) }})
				b.StartTimer()
				res, err := s.Close(ctx, "2030-01", DefaultFeeBasisPoints)
				if err != nil || len(res) != 1 || res[0].Invoices != 10_000 || res[0].Statements != 1 {
					b.Fatal(res, err)
				}
			}
			b.ReportMetric(1e6, "usage-rows")
		})
	}
}
