package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// eachStore runs fn on a fresh, migrated store of each database.
func eachStore(t *testing.T, fn func(t *testing.T, db sqlstoretest.Database, url string, st *sqlstore.Store)) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			url := db.URL(t)
			fn(t, db, url, openStore(t, url))
		})
	}
}

func openStore(t *testing.T, url string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func appendN(t *testing.T, st *sqlstore.Store, workspaceID string, n int) {
	t.Helper()
	for i := range n {
		r := &core.AuditRecord{WorkspaceID: workspaceID, Action: "test.append", Outcome: "success", Target: fmt.Sprint(i)}
		if err := st.AppendAudit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func exec(t *testing.T, st *sqlstore.Store, query string, args ...any) {
	t.Helper()
	if _, err := st.DB().Exec(st.DB().Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// newTestChecker reads 3 records at a time, so that a few records take
// several pages.
func newTestChecker(st *sqlstore.Store) *Checker {
	c := NewChecker(st, hclog.NewNullLogger(), time.Minute, nil)
	c.page = 3
	return c
}

func mustCheck(t *testing.T, c *Checker) []*Break {
	t.Helper()
	breaks, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return breaks
}

// The checker verifies every record once, when it is new: each pass reads
// only what was appended since the last, in every workspace, including
// ones made meanwhile.
func TestCheckerVerifiesWhatIsNew(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		acme, err := st.CreateWorkspace(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, st, acme.ID, 7)
		c := newTestChecker(st)
		if got := c.Stats(); !got.LastSuccess.IsZero() || got.Interval != time.Minute {
			t.Fatalf("before a pass: %+v", got)
		}
		began := time.Now()
		if b := mustCheck(t, c); b != nil {
			t.Fatalf("a whole log: breaks %v", b)
		}
		got := c.Stats()
		if got.Records != 7 || got.Failures != 0 || got.Errors != 0 || got.LastSuccess.Before(began.Add(-time.Second)) {
			t.Fatalf("after the first pass: %+v, want 7 records verified and a success", got)
		}

		other, err := st.CreateWorkspace(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, st, acme.ID, 4)
		appendN(t, st, other.ID, 2)
		if b := mustCheck(t, c); b != nil {
			t.Fatalf("breaks %v", b)
		}
		if got := c.Stats().Records; got != 13 {
			t.Fatalf("%d records verified after the second pass, want 13: each once", got)
		}
		mustCheck(t, c)
		if got := c.Stats(); got.Records != 13 || got.Failures != 0 {
			t.Fatalf("a pass with nothing new: %+v", got)
		}
	})
}

// A record changed before it was verified breaks the chain: the pass
// names it as Verify does, counts a failure and no success, and so does
// every pass after it.
func TestCheckerFindsAnEditedRecord(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		ws, err := st.CreateWorkspace(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, st, ws.ID, 4)
		c := newTestChecker(st)
		mustCheck(t, c)
		success := c.Stats().LastSuccess
		appendN(t, st, ws.ID, 4)
		exec(t, st, `UPDATE audit_records SET outcome = 'denied' WHERE workspace_id = ? AND seq = 6`, ws.ID)
		for pass := 1; pass <= 2; pass++ {
			breaks := mustCheck(t, c)
			if len(breaks) != 1 || breaks[0].Seq != 6 || breaks[0].Kind != Edited || breaks[0].WorkspaceID != ws.ID {
				t.Fatalf("pass %d: breaks %v, want seq 6 edited", pass, breaks)
			}
			got := c.Stats()
			if got.Failures != uint64(pass) || !got.LastSuccess.Equal(success) {
				t.Fatalf("pass %d: %+v, want %d failures and the last success still %s", pass, got, pass, success)
			}
		}
	})
}

// What the chain alone cannot show, the checker sees in records it
// verified: the newest one deleted, or rewritten and re-hashed.
func TestCheckerFindsAChangedTail(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		for _, tc := range []struct {
			name   string
			tamper func(t *testing.T, workspaceID string)
			kind   string
		}{
			{"deleted", func(t *testing.T, ws string) {
				exec(t, st, `DELETE FROM audit_records WHERE workspace_id = ? AND seq = 5`, ws)
			}, Deleted},
			{"rewritten", func(t *testing.T, ws string) {
				records, err := st.AuditFrom(ctx, ws, 5, 1)
				if err != nil || len(records) != 1 {
					t.Fatalf("%v %v", records, err)
				}
				r := records[0]
				r.Outcome = "denied"
				exec(t, st, `UPDATE audit_records SET outcome = ?, hash = ? WHERE workspace_id = ? AND seq = 5`,
					r.Outcome, r.ChainHash(r.PrevHash), ws)
			}, Edited},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ws, err := st.CreateWorkspace(ctx, "ws-"+tc.name)
				if err != nil {
					t.Fatal(err)
				}
				appendN(t, st, ws.ID, 5)
				c := newTestChecker(st)
				mustCheck(t, c)
				tc.tamper(t, ws.ID)
				// The chain alone is whole again.
				if b, err := Verify(ctx, st, ws.ID, nil); b != nil || err != nil {
					t.Fatalf("Verify: %v, %v; want a whole chain", b, err)
				}
				breaks := mustCheck(t, c)
				if len(breaks) != 1 || breaks[0].Seq != 5 || breaks[0].Kind != tc.kind {
					t.Fatalf("breaks %v, want seq 5 %s", breaks, tc.kind)
				}
			})
		}
	})
}

// A pass that cannot read the log counts an error, not a failure.
func TestCheckerCountsErrors(t *testing.T) {
	url := sqlstoretest.SQLiteURL(t)
	st := openStore(t, url)
	c := newTestChecker(st)
	mustCheck(t, c)
	st.Close()
	if _, err := c.Check(context.Background()); err == nil {
		t.Fatal("a pass on a closed store succeeded")
	}
	if got := c.Stats(); got.Errors != 1 || got.Failures != 0 {
		t.Fatalf("%+v, want 1 error and no failure", got)
	}
}

// Replicas each run a checker on the one database while both append: no
// record is seen out of place, and each ends having verified them all.
func TestCheckersBesideWriters(t *testing.T) {
	eachStore(t, func(t *testing.T, db sqlstoretest.Database, url string, st *sqlstore.Store) {
		ctx := context.Background()
		stores := []*sqlstore.Store{st}
		if db.Name == "postgres" {
			stores = append(stores, openStore(t, url)) // another replica
		}
		var workspaces []string
		for i := range 3 {
			ws, err := st.CreateWorkspace(ctx, fmt.Sprint("ws-", i))
			if err != nil {
				t.Fatal(err)
			}
			workspaces = append(workspaces, ws.ID)
		}
		var checkers []*Checker
		for _, s := range stores {
			checkers = append(checkers, newTestChecker(s))
		}
		stop := make(chan struct{})
		var writers, passes sync.WaitGroup
		for _, s := range stores {
			for _, ws := range workspaces {
				writers.Go(func() {
					for range 30 {
						if err := s.AppendAudit(ctx, &core.AuditRecord{WorkspaceID: ws, Action: "test.append", Outcome: "success"}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
		}
		for _, c := range checkers {
			passes.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if b, err := c.Check(ctx); b != nil || err != nil {
						t.Errorf("a pass while appending: breaks %v, error %v", b, err)
						return
					}
				}
			})
		}
		writers.Wait()
		close(stop)
		passes.Wait()
		want := uint64(30 * len(stores) * len(workspaces))
		for i, c := range checkers {
			if b := mustCheck(t, c); b != nil {
				t.Fatalf("checker %d: breaks %v", i, b)
			}
			if got := c.Stats().Records; got != want {
				t.Errorf("checker %d verified %d records, want %d", i, got, want)
			}
		}
	})
}

// Run makes a pass at once and then one each interval, until stopped.
func TestCheckerRun(t *testing.T) {
	st := openStore(t, sqlstoretest.SQLiteURL(t))
	ws, err := st.CreateWorkspace(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, st, ws.ID, 2)
	c := NewChecker(st, nil, 10*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	waitFor(t, "the first pass", func() bool { return c.Stats().Records == 2 })
	appendN(t, st, ws.ID, 3)
	waitFor(t, "a later pass", func() bool { return c.Stats().Records == 5 })
	cancel()
	<-done
	if got := c.Stats(); got.LastSuccess.IsZero() || got.Failures != 0 || got.Errors != 0 {
		t.Fatalf("%+v", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An erased workspace (its records go with it) is no break: the checker
// forgets it, whether it was erased before a pass or during one, after
// the pass listed it.
func TestCheckerForgetsErasedWorkspaces(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		erase := func(id string) {
			t.Helper()
			tx := st.DB().MustBegin()
			for _, q := range []string{`DELETE FROM audit_records WHERE workspace_id = ?`, `DELETE FROM workspaces WHERE id = ?`} {
				if _, err := tx.Exec(tx.Rebind(q), id); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		for _, name := range []string{"kept", "before", "during"} {
			ws, err := st.CreateWorkspace(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, st, ws.ID, 3)
			ids = append(ids, ws.ID)
		}
		c := newTestChecker(st)
		mustCheck(t, c)

		erase(ids[1])
		if b := mustCheck(t, c); b != nil {
			t.Fatalf("erased before the pass: breaks %v", b)
		}
		if _, ok := c.heads[ids[1]]; ok {
			t.Error("the erased workspace is still remembered")
		}

		// As if erased between the pass's list of workspaces and its read.
		erase(ids[2])
		c.mu.Lock()
		b, err := c.checkWorkspace(ctx, ids[2])
		_, remembered := c.heads[ids[2]]
		c.mu.Unlock()
		if b != nil || err != nil || remembered {
			t.Fatalf("erased during the pass: %v, %v, remembered %v", b, err, remembered)
		}
		appendN(t, st, ids[0], 1)
		if b := mustCheck(t, c); b != nil {
			t.Fatalf("breaks %v", b)
		}
		if got := c.Stats(); got.Records != 10 || got.Failures != 0 {
			t.Fatalf("%+v, want the 10 records verified and no failure", got)
		}
	})
}
