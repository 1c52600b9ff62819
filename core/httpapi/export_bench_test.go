package httpapi

import (
	"database/sql"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// BenchmarkWorkspaceExport measures POST /v1/workspace/export of a
// workspace with a month of a million ended runs and their million audit
// records (SQLite), read whole by the client, against a baseline in the
// same run: reading the same rows from the database with nothing done to
// them. The server's request deadline is lifted so that the export's own
// speed shows; with the default 25 s, a workspace exports over the API
// if it fits in that. Run it once: -benchtime 1x.
func BenchmarkWorkspaceExport(b *testing.B) {
	const runs = 1_000_000
	ts := newTestServerOn(b, sqlstoretest.SQLiteURL(b), echoBothForms(b), nil, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.RequestTimeout = 10 * time.Minute
	})
	ws, keys := ts.workspace("bench")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "echo", "name": "echo", "runtime": core.RuntimeWASM})
	ex := &echoExecutor{url: ts.URL + "/v1/actions/echo.echo/execute", key: keys[core.RoleDeveloper],
		body: []byte(`{"params":{"order":42,"items":["a","b"],"note":"benchmark"}}`)}
	ex.execute(b) // the template of the runs
	seedOldRuns(b, ts, runs, time.Now().Add(-30*24*time.Hour), 30*24*time.Hour)
	seededAudit := seedOldAudit(b, ts, runs, time.Now().Add(-30*24*time.Hour), 30*24*time.Hour)
	// The audit records were made in a workspace of their own; move them
	// after this one's (the export copies the chain as it is, without
	// checking that it links).
	if _, err := ts.Store.DB().Exec(`UPDATE audit_records SET workspace_id = ?, seq = seq + 1000 WHERE workspace_id = ?`, ws.ID, seededAudit); err != nil {
		b.Fatal(err)
	}

	// The baseline: every row of the two tables, read and dropped.
	t0 := time.Now()
	var rows int64
	for _, table := range []string{"runs", "audit_records"} {
		rs, err := ts.Store.DB().Query(`SELECT * FROM `+table+` WHERE workspace_id = ?`, ws.ID)
		if err != nil {
			b.Fatal(err)
		}
		cols, _ := rs.Columns()
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(sql.RawBytes)
		}
		for rs.Next() {
			if err := rs.Scan(vals...); err != nil {
				b.Fatal(err)
			}
			rows++
		}
		if err := rs.Err(); err != nil {
			b.Fatal(err)
		}
		rs.Close()
	}
	read := time.Since(t0)

	b.ResetTimer()
	var size int64
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/workspace/export", nil)
		req.Header.Set("Authorization", "Bearer "+keys[core.RoleAdmin])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		size, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("export: %d, %v", resp.StatusCode, err)
		}
	}
	took := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(took.Seconds(), "export-s")
	b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
	b.ReportMetric(float64(size)/(1<<20), "archive-MiB")
	b.ReportMetric(read.Seconds(), "baseline-read-s")
}
