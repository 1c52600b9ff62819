package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

func TestParseDatabaseURL(t *testing.T) {
	tests := []struct {
		url      string
		dialect  *dialect
		wantPath string            // the DSN up to '?'
		want     map[string]string // parameters the DSN must carry
		absent   []string          // parameters it must not carry
	}{
		{url: "postgres://u@h/db?sslmode=disable", dialect: postgresDialect, wantPath: "postgres://u@h/db"},
		{url: "postgresql://u@h/db", dialect: postgresDialect, wantPath: "postgresql://u@h/db"},
		{
			url: "relay-data/relay.db", dialect: sqliteDialect, wantPath: "relay-data/relay.db",
			want: map[string]string{
				"_txlock": "immediate", "_foreign_keys": "1", "_journal_mode": "WAL",
				"_busy_timeout": "10000", "_synchronous": "FULL", "_time_format": "sqlite", "_timezone": "UTC",
			},
		},
		{url: "sqlite:relay.db", dialect: sqliteDialect, wantPath: "relay.db"},
		{url: "sqlite:///var/lib/relay.db", dialect: sqliteDialect, wantPath: "/var/lib/relay.db"},
		{url: "file:relay.db?mode=rwc", dialect: sqliteDialect, wantPath: "file:relay.db", want: map[string]string{"mode": "rwc", "_txlock": "immediate"}},
		{
			// The URL's own choices win where the store can live with them...
			url: "x.db?_busy_timeout=50&_sync=FULL&_journal_mode=DELETE", dialect: sqliteDialect, wantPath: "x.db",
			want:   map[string]string{"_busy_timeout": "50", "_sync": "FULL", "_journal_mode": "DELETE"},
			absent: []string{"_synchronous"},
		},
		{
			// ...but not where its correctness depends on them.
			url: "x.db?_txlock=deferred&_fk=0&_time_format=datetime", dialect: sqliteDialect, wantPath: "x.db",
			want:   map[string]string{"_txlock": "immediate", "_foreign_keys": "1", "_time_format": "sqlite"},
			absent: []string{"_fk"},
		},
	}
	for _, tt := range tests {
		d, dsn, err := parseDatabaseURL(tt.url)
		if err != nil {
			t.Errorf("%q: %v", tt.url, err)
			continue
		}
		if d != tt.dialect {
			t.Errorf("%q: dialect %s, want %s", tt.url, d.name, tt.dialect.name)
		}
		path, rawQuery, _ := strings.Cut(dsn, "?")
		if path != tt.wantPath {
			t.Errorf("%q: DSN path %q, want %q", tt.url, path, tt.wantPath)
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			t.Errorf("%q: DSN %q: %v", tt.url, dsn, err)
		}
		for k, v := range tt.want {
			if got := q[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%q: DSN %q has %s=%v, want %s", tt.url, dsn, k, got, v)
			}
		}
		for _, k := range tt.absent {
			if q.Has(k) {
				t.Errorf("%q: DSN %q has %s", tt.url, dsn, k)
			}
		}
	}

	for _, bad := range []string{"", "sqlite:", "sqlite://", "x.db?_pragma=%zz"} {
		if _, _, err := parseDatabaseURL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The settings reach every pooled connection, not only the first.
func TestSQLiteSettings(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	ctx := context.Background()
	conns := make([]interface{ Close() error }, 0, 3)
	for i := range 3 {
		c, err := s.db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"busy_timeout": "10000",
			"synchronous":  "2", // FULL
		} {
			var got string
			if err := c.GetContext(ctx, &got, "PRAGMA "+pragma); err != nil {
				t.Fatalf("connection %d: PRAGMA %s: %v", i, pragma, err)
			}
			if got != want {
				t.Errorf("connection %d: %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// A transaction takes the write lock at BEGIN, so one that has only read
// so far already keeps other writers out; Migrate and Bootstrap rely on it.
// Begun DEFERRED, the write below would go through.
func TestSQLiteTransactionsBeginImmediate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openStore(t, path)
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, path)

	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM workspaces`); err != nil {
		t.Fatal(err)
	}

	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = other.CreateWorkspace(waitCtx, "blocked")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write during an open transaction: %v, want it to wait until its deadline", err)
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	mustCreateWorkspace(t, other, "after")
}

func TestSQLiteInMemory(t *testing.T) {
	s := openStore(t, ":memory:")
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	w := mustCreateWorkspace(t, s, "acme")
	// A second connection would see an empty database of its own.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.Workspace(ctx, w.ID); err != nil {
				t.Errorf("Workspace: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestOpenFails(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		filepath.Join(t.TempDir(), "missing", "dir", "relay.db"),
		"postgres://postgres@127.0.0.1:1/relay?sslmode=disable&connect_timeout=5",
	} {
		s, err := Open(ctx, u)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

// childDBEnv tells the test binary, run again as a child process, which
// SQLite file to write to.
const childDBEnv = "RELAY_SQLSTORE_CHILD_DB"

const sharedWrites = 40

// TestSQLiteChildWriter is the child's half of TestSQLiteSharedAcrossProcesses;
// run directly, it does nothing.
func TestSQLiteChildWriter(t *testing.T) {
	path := os.Getenv(childDBEnv)
	if path == "" {
		return
	}
	s := openStore(t, path)
	for i := range sharedWrites {
		mustCreateWorkspace(t, s, fmt.Sprintf("child-%d", i))
	}
}

// The CLI and a running server are separate processes writing one SQLite
// file at the same time; neither may fail with "database is locked".
func TestSQLiteSharedAcrossProcesses(t *testing.T) {
	if os.Getenv(childDBEnv) != "" {
		t.Skip("running as the child")
	}
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openStore(t, path)
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run=^TestSQLiteChildWriter$", "-test.count=1")
	child.Env = append(os.Environ(), childDBEnv+"="+path)
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// The parent writes for as long as the child runs, so that the two
	// overlap however slowly the child starts.
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	parentWrites := 0
	for running := true; running; parentWrites++ {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("child process: %v\n%s", err, out.String())
			}
			running = false
		default:
		}
		mustCreateWorkspace(t, s, fmt.Sprintf("parent-%d", parentWrites))
	}

	ws, err := s.ListWorkspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != sharedWrites+parentWrites {
		t.Fatalf("%d workspaces, want %d", len(ws), sharedWrites+parentWrites)
	}
	if _, err := s.WorkspaceByName(ctx, "child-0"); err != nil {
		t.Errorf("parent does not see the child's write: %v", err)
	}
	wantCode(t, func() error { _, err := s.CreateWorkspace(ctx, "child-1"); return err }(), core.EConflict)
}

// Times are stored as UTC text that SQLite's date functions understand and
// that sorts as the times do.
func TestSQLiteTimeText(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := mustCreateWorkspace(t, s, "acme")
	k := newKey(w.ID, "k")
	k.CreatedAt = time.Date(2031, 2, 3, 4, 5, 6, 120000000, time.FixedZone("UTC-7", -7*3600))
	if err := s.CreateKey(ctx, k, nil); err != nil {
		t.Fatal(err)
	}
	var row struct {
		Text     string `db:"text"`
		Datetime string `db:"datetime"`
	}
	if err := s.db.GetContext(ctx, &row, `SELECT CAST(created_at AS TEXT) AS text, datetime(created_at) AS datetime FROM api_keys`); err != nil {
		t.Fatal(err)
	}
	if row.Text != "2031-02-03 11:05:06.12+00:00" || row.Datetime != "2031-02-03 11:05:06" {
		t.Errorf("created_at stored as %q, datetime() gives %q", row.Text, row.Datetime)
	}
}

// TestConnectionsReused: a burst of more concurrent queries than the pool
// keeps idle waits for its connections instead of opening more, on both
// databases. Opening a SQLite connection for one query and closing it
// after cost a busy server ~5% of its CPU.
func TestConnectionsReused(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		before := s.db.Stats()
		const queries = 4 * maxOpenConns
		var wg sync.WaitGroup
		errs := make(chan error, queries)
		for range queries {
			wg.Go(func() {
				rows, err := s.db.QueryContext(context.Background(), `SELECT 1`)
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(5 * time.Millisecond) // holding the connection
				errs <- errors.Join(rows.Close(), rows.Err())
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		st := s.db.Stats()
		if st.MaxOpenConnections != maxOpenConns || st.OpenConnections > maxOpenConns {
			t.Errorf("%d connections open, at most %d allowed; want at most %d", st.OpenConnections, st.MaxOpenConnections, maxOpenConns)
		}
		if closed := st.MaxIdleClosed - before.MaxIdleClosed; closed != 0 {
			t.Errorf("%d connections were opened for one query and closed after it", closed)
		}
		if st.WaitCount == before.WaitCount {
			t.Errorf("no query waited for a connection: the burst was too small to test the limit")
		}
	})
}
