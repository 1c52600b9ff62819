package httpapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// BenchmarkExecuteDuringPurge measures executions' latency while a
// workspace's month of a million runs past its retention is purged
// (actions.Service.PurgeRuns: batches of 500, each its own transaction),
// against the same executions with no purge, in the same run: executions
// sent at a steady 500/s, each on time (an open loop), b.N of them with
// no purge and then as many as go while the purge runs. SQLite: the one
// writer that a purge could stall. Run it once: -benchtime 2000x.
func BenchmarkExecuteDuringPurge(b *testing.B) {
	const runs = 1_000_000
	ts := newTestServerOn(b, sqlstoretest.SQLiteURL(b), echoBothForms(b), nil, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.DefaultRateLimit = core.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
	})
	_, keys := ts.workspace("bench")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "echo", "name": "echo", "runtime": core.RuntimeWASM})
	ex := &echoExecutor{url: ts.URL + "/v1/actions/echo.echo/execute", key: keys[core.RoleDeveloper],
		body: []byte(`{"params":{"order":42,"items":["a","b"],"note":"benchmark"}}`)}
	ex.execute(b) // the template of the old runs, and a warm module
	seedOldRuns(b, ts, runs, time.Now().Add(-130*24*time.Hour), 30*24*time.Hour)
	// The seeding's write-ahead log goes into the database first, and the
	// server warms up, so that neither phase pays for them.
	if _, err := ts.Store.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	for range 500 {
		ex.execute(b)
	}

	paced := func(until func(i int) bool) []time.Duration {
		const interval = 2 * time.Millisecond // 500 requests/s
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; until(i); i++ {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			wg.Go(func() {
				d := ex.execute(b)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			})
		}
		wg.Wait()
		return lat
	}
	b.ResetTimer()
	quiet := paced(func(i int) bool { return i < b.N })
	done := make(chan struct{})
	var purged int64
	var purgeErr error
	t0 := time.Now()
	go func() {
		defer close(done)
		purged, purgeErr = ts.Server.cfg.Actions.PurgeRuns(context.Background(), 90)
	}()
	during := paced(func(i int) bool {
		select {
		case <-done:
			return i < b.N
		default:
			return true
		}
	})
	<-done
	took := time.Since(t0)
	b.StopTimer()
	if purgeErr != nil || purged < runs {
		b.Fatalf("purged %d runs: %v", purged, purgeErr)
	}
	pct := func(lat []time.Duration, p int) float64 {
		slices.Sort(lat)
		return float64(lat[len(lat)*p/100].Microseconds())
	}
	b.ReportMetric(pct(quiet, 50), "quiet-p50-µs")
	b.ReportMetric(pct(quiet, 99), "quiet-p99-µs")
	b.ReportMetric(pct(during, 50), "purging-p50-µs")
	b.ReportMetric(pct(during, 99), "purging-p99-µs")
	b.ReportMetric(float64(purged)/took.Seconds(), "purged-runs/s")
	b.ReportMetric(took.Seconds(), "purge-s")
}

// seedOldRuns copies the workspace's one run n times, made from since over
// span, as if a month of runs had ended long ago.
func seedOldRuns(b *testing.B, ts *testServer, n int, since time.Time, span time.Duration) {
	b.Helper()
	db := ts.Store.DB()
	var cols []string
	if err := db.Select(&cols, `SELECT name FROM pragma_table_info('runs') WHERE name NOT IN ('id', 'created_at', 'idempotency_key')`); err != nil {
		b.Fatal(err)
	}
	var template string
	if err := db.Get(&template, `SELECT id FROM runs LIMIT 1`); err != nil {
		b.Fatal(err)
	}
	list := strings.Join(cols, ", ")
	tx, err := db.Beginx()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Preparex(fmt.Sprintf(`INSERT INTO runs (id, created_at, %s) SELECT ?, ?, %s FROM runs WHERE id = ?`, list, list))
	if err != nil {
		b.Fatal(err)
	}
	step := span / time.Duration(n)
	for i := range n {
		at := since.Add(time.Duration(i) * step)
		// IDFloor is unique per millisecond; the runs are spread wider.
		if _, err := stmt.Exec(core.IDFloor(at), at.UTC(), template); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
