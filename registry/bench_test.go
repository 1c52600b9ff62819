package registry

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// BenchmarkSearch searches a registry of 10,000 packages (on SQLite and
// PostgreSQL) for a word that 1 in 100 of them has in its description,
// and reports the p50 and p99 of a page of 50.
func BenchmarkSearch(b *testing.B) {
	for _, db := range sqlstoretest.Databases() {
		b.Run(db.Name, func(b *testing.B) {
			e := newEnv(b, db.URL(b))
			ctx := context.Background()
			seedPackages(b, e, 10_000)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				list, _, err := e.reg.Search(ctx, fmt.Sprintf("topic%02d", i%100), "", core.Page{Limit: 50})
				if err != nil || len(list) == 0 {
					b.Fatalf("search: %d found, %v", len(list), err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// seedPackages inserts n packages of one publisher, each with one
// version, in one transaction: what publishing them would store, without
// packing and signing each.
func seedPackages(b *testing.B, e *env, n int) {
	b.Helper()
	e.publisher("bench")
	err := e.store.InAuditedTx(context.Background(), func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
		now := e.now
		for i := range n {
			name := fmt.Sprintf("bench/pkg-%05d", i)
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_packages (name, publisher, description, created_at, updated_at) VALUES (?, 'bench', ?, ?, ?)`),
				name, fmt.Sprintf("package %d about topic%02d", i, i%100), now, now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_versions (package, version, index_json, signature, signer_key_id, manifest, capabilities, blob_sha256, size, published_at)
				VALUES (?, '1.0.0', ?, 'sig', 'KEY', ?, '{"actions":[]}', ?, 1, ?)`), name, []byte(`{"files":[{"path":"connector.wasm"}]}`),
				fmt.Sprintf(notesManifest, fmt.Sprintf("pkg-%05d", i), "1.0.0"), fmt.Sprintf("%064x", i), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
