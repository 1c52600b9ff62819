package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// BenchmarkExecuteDuringPurge measures executions' latency while a
// workspace's month of a million runs past its retention is purged
// (actions.Service.PurgeRuns: batches of 100, each its own transaction,
// each followed by a pause as long as it took), against the same
// executions with no purge, in the same run: executions sent at a steady
// 500/s, each on time (an open loop), b.N of them with no purge and then
// as many as go while the purge runs. SQLite: the one writer that a
// purge could stall. Run it once: -benchtime 2000x.
func BenchmarkExecuteDuringPurge(b *testing.B) {
	const runs = 1_000_000
	benchExecuteDuringPurge(b, runs, func(ts *testServer, ex *echoExecutor) {
		ex.execute(b) // the template of the old runs
		seedOldRuns(b, ts, runs, time.Now().Add(-130*24*time.Hour), 30*24*time.Hour)
	}, func(ts *testServer) (int64, error) {
		return ts.Server.cfg.Actions.PurgeRuns(context.Background(), 90)
	}, "purged-runs/s")
}

// BenchmarkExecuteDuringAuditPurge is BenchmarkExecuteDuringPurge for a
// workspace's million audit records past its audit retention
// (actions.Service.PurgeAudit: batches of 200, each verified, deleted and
// replaced by a signed checkpoint in one transaction), purged while
// another workspace executes.
func BenchmarkExecuteDuringAuditPurge(b *testing.B) {
	const records = 1_000_000
	signer, err := audit.NewSigner(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		b.Fatal(err)
	}
	var archive string
	benchExecuteDuringPurge(b, records, func(ts *testServer, _ *echoExecutor) {
		archive = seedOldAudit(b, ts, records, time.Now().Add(-500*24*time.Hour), 30*24*time.Hour)
	}, func(ts *testServer) (int64, error) {
		purger := actions.New(actions.Config{Store: ts.Store, AuditSigner: signer, PurgeInterval: time.Hour})
		defer purger.Close(context.Background())
		n, err := purger.PurgeAudit(context.Background(), 365)
		if err == nil {
			if brk, verr := audit.Verify(context.Background(), ts.Store, archive, signer.PublicKey()); verr != nil || brk != nil {
				err = fmt.Errorf("the chain after the purge: %v %v", brk, verr)
			}
		}
		return n, err
	}, "purged-records/s")
}

// benchExecuteDuringPurge runs executions with no purge and then during
// purge, which must delete at least n rows, after seed.
func benchExecuteDuringPurge(b *testing.B, n int64, seed func(*testServer, *echoExecutor), purge func(*testServer) (int64, error), rate string) {
	ts := newTestServerOn(b, sqlstoretest.SQLiteURL(b), echoBothForms(b), nil, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.DefaultRateLimit = core.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
	})
	_, keys := ts.workspace("bench")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "echo", "name": "echo", "runtime": core.RuntimeWASM})
	ex := &echoExecutor{url: ts.URL + "/v1/actions/echo.echo/execute", key: keys[core.RoleDeveloper],
		body: []byte(`{"params":{"order":42,"items":["a","b"],"note":"benchmark"}}`)}
	seed(ts, ex)
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
		purged, purgeErr = purge(ts)
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
	if purgeErr != nil || purged < n {
		b.Fatalf("purged %d: %v", purged, purgeErr)
	}
	pct := func(lat []time.Duration, p int) float64 {
		slices.Sort(lat)
		return float64(lat[len(lat)*p/100].Microseconds())
	}
	b.ReportMetric(pct(quiet, 50), "quiet-p50-µs")
	b.ReportMetric(pct(quiet, 99), "quiet-p99-µs")
	b.ReportMetric(pct(during, 50), "purging-p50-µs")
	b.ReportMetric(pct(during, 99), "purging-p99-µs")
	b.ReportMetric(float64(purged)/took.Seconds(), rate)
	b.ReportMetric(took.Seconds(), "purge-s")
}

// seedOldAudit makes a workspace whose audit log begins with n records
// made from since over span, chained as AppendAudit chains them, and
// returns its id.
func seedOldAudit(b *testing.B, ts *testServer, n int, since time.Time, span time.Duration) string {
	b.Helper()
	ws, err := ts.Store.CreateWorkspace(context.Background(), "archive")
	if err != nil {
		b.Fatal(err)
	}
	tx, err := ts.Store.DB().Beginx()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Preparex(`INSERT INTO audit_records (workspace_id, seq, id, time, key_id, role, ip, request_id, action, target,
		outcome, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	step := span / time.Duration(n)
	var prev []byte
	for i := range n {
		at := since.Add(time.Duration(i) * step).UTC().Truncate(time.Microsecond)
		r := &core.AuditRecord{WorkspaceID: ws.ID, Seq: int64(i + 1), ID: core.NewID(), Time: at, KeyID: "key_bench", Role: "developer",
			IP: "192.0.2.1", RequestID: "req", Action: "action.execute", Target: "run:" + core.IDFloor(at), Outcome: "succeeded",
			Details: []byte(`{"connector":"echo","version":"1.0.0"}`), PrevHash: prev}
		r.Hash = r.ChainHash(prev)
		var prevArg any
		if prev != nil {
			prevArg = prev
		}
		if _, err := stmt.Exec(r.WorkspaceID, r.Seq, r.ID, r.Time, r.KeyID, r.Role, r.IP, r.RequestID, r.Action, r.Target,
			r.Outcome, string(r.Details), prevArg, r.Hash); err != nil {
			b.Fatal(err)
		}
		prev = r.Hash
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return ws.ID
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
