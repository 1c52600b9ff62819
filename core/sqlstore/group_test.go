package sqlstore

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// A group is all-or-nothing per write, not per group: a write that fails
// is rolled back alone, and the others in its transaction commit.
func TestGroupRollsBackOnlyTheFailedWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		rename := func(name string, fail bool) groupOp {
			return groupOp{ctx: ctx, done: make(chan error, 1), fn: func(ctx context.Context, tx *sqlx.Tx) error {
				if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE workspaces SET name = ? WHERE id = ?`), name, ws.ID); err != nil {
					return err
				}
				if fail {
					return errors.New("refused after writing")
				}
				return nil
			}}
		}
		batch := []groupOp{rename("first", false), rename("second", true), rename("third", false), rename("fourth", true)}
		s.runGroup(batch)
		for i, want := range []bool{false, true, false, true} {
			if err := <-batch[i].done; (err != nil) != want {
				t.Errorf("write %d: error %v, want failure %v", i, err, want)
			}
		}
		got, err := s.Workspace(ctx, ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "third" {
			t.Fatalf("name %q after the group, want the last successful write's %q", got.Name, "third")
		}
	})
}

// Concurrent writes all land, whatever groups they share.
func TestGroupConcurrentWrites(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if err := s.AppendAudit(ctx, newAudit(ws.ID, "test.write")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		n := 0
		if err := s.ScanAudit(ctx, ws.ID, func(*core.AuditRecord) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 50 {
			t.Fatalf("%d audit records, want 50", n)
		}
	})
}
