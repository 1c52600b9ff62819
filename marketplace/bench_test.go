package marketplace

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// BenchmarkSearch searches 10,000 listed templates (on SQLite and
// PostgreSQL) and reports the p50 and p99 of a page of 20 for a few
// searches, beside a SELECT 1 on the same pool as the baseline: a rare
// word (100 match), a word 500 have, a word 1,000 have (a publisher's
// name, a word of each of its templates' names), a common word (all
// match) by relevance and by installs, a category by last published, by installs, and a word with a
// publisher.
func BenchmarkSearch(b *testing.B) {
	for _, db := range sqlstoretest.Databases() {
		b.Run(db.Name, func(b *testing.B) {
			e := newEnv(b, db.URL(b))
			ctx := context.Background()
			seedListings(b, e, 10_000)
			b.Run("select-1", func(b *testing.B) {
				measure(b, func(int) error {
					var one int
					return e.store.DB().GetContext(ctx, &one, `SELECT 1`)
				})
			})
			for _, c := range []struct {
				name string
				q    func(i int) SearchQuery
			}{
				{"rare-word", func(i int) SearchQuery { return SearchQuery{Q: fmt.Sprintf("topic%02d", i%100)} }},
				{"word-in-500", func(i int) SearchQuery { return SearchQuery{Q: fmt.Sprintf("cat%02d", i%20)} }},
				{"word-in-1000", func(i int) SearchQuery { return SearchQuery{Q: fmt.Sprintf("pub%d", i%10)} }},
				{"common-word", func(int) SearchQuery { return SearchQuery{Q: "notes"} }},
				{"common-word-installs", func(int) SearchQuery { return SearchQuery{Q: "notes", Sort: SortInstalls} }},
				{"category-updated", func(i int) SearchQuery { return SearchQuery{Category: fmt.Sprintf("cat%02d", i%20), Sort: SortUpdated} }},
				{"installs", func(int) SearchQuery { return SearchQuery{Sort: SortInstalls} }},
				{"word-publisher", func(i int) SearchQuery {
					return SearchQuery{Q: fmt.Sprintf("topic%02d", i%100), Publisher: fmt.Sprintf("pub%d", i%10)}
				}},
			} {
				b.Run(c.name, func(b *testing.B) {
					measure(b, func(i int) error {
						q := c.q(i)
						q.Limit = 20
						page, err := e.market.Search(ctx, q)
						if err == nil && len(page.Data) == 0 {
							err = fmt.Errorf("%+v found nothing", q)
						}
						return err
					})
				})
			}
		})
	}
}

// measure runs fn b.N times and reports its p50 and p99.
func measure(b *testing.B, fn func(i int) error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := fn(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// seedListings stores n templates of ten publishers, each with one
// version, and lists them through TemplatePublished, in transactions of
// 500: what publishing them would store, without packing, signing and
// checking each. Each has a word 1 in 100 have (topicNN), a category of
// 20, the word notes, a readme of some length, and up to 1,000 installs.
func seedListings(b *testing.B, e *env, n int) {
	b.Helper()
	for p := range 10 {
		e.publisher(fmt.Sprintf("pub%d", p))
	}
	readme := "Keeps a log of what happened, where and when, for the whole team to read later. "
	for start := 0; start < n; start += 500 {
		err := e.store.InAuditedTx(context.Background(), func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
			for i := start; i < min(start+500, n); i++ {
				name := fmt.Sprintf("pub%d/tpl-%05d", i%10, i)
				e.now = e.now.Add(time.Second)
				doc, _ := json.Marshal(map[string]any{"name": name, "version": "1.0.0", "title": fmt.Sprintf("Template %d", i),
					"summary":    fmt.Sprintf("Takes notes about topic%02d, number %d.", i%100, i),
					"readme":     readme + fmt.Sprintf("Item %d of the bench.", i),
					"categories": []string{fmt.Sprintf("cat%02d", i%20)},
					"connectors": []any{map[string]any{"package": "acme/notes", "version": "^1"}}, "actions": []any{}})
				if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_packages (name, publisher, description, created_at, updated_at, skeleton, kind)
					VALUES (?, ?, '', ?, ?, ?, 'template')`), name, fmt.Sprintf("pub%d", i%10), e.now, e.now, name); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_versions (package, version, index_json, signature, signer_key_id, manifest, capabilities, blob_sha256, size, published_at)
					VALUES (?, '1.0.0', ?, 'sig', 'KEY', ?, '{}', ?, 1, ?)`), name, []byte(`{}`), string(doc), fmt.Sprintf("%064x", i), e.now); err != nil {
					return err
				}
				if err := e.market.TemplatePublished(ctx, tx, doc); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE marketplace_template_stats SET installs = ? WHERE template = ?`), (i*7919)%1000, name); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if e.store.Dialect() == "postgres" {
		// As autovacuum would: statistics, and the GIN index's pending
		// entries merged.
		if _, err := e.store.DB().Exec(`VACUUM ANALYZE`); err != nil {
			b.Fatal(err)
		}
	}
}
