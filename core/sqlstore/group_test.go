package sqlstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/relayhq/relay/core"
)

// A group is all-or-nothing per write, not per group: a write that fails
// is rolled back alone, audit records included, and the others in its
// transaction commit, their records chained in order.
func TestGroupRollsBackOnlyTheFailedWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		if err := s.AppendAudit(ctx, newAudit(ws.ID, "test.first")); err != nil {
			t.Fatal(err)
		}
		rename := func(name string, fail bool) groupOp {
			return groupOp{ctx: ctx, done: make(chan error, 1), fn: func(ctx context.Context, g *groupTx) error {
				if _, err := g.ExecContext(ctx, g.Rebind(`UPDATE workspaces SET name = ? WHERE id = ?`), name, ws.ID); err != nil {
					return err
				}
				for _, w := range []string{ws.ID, other.ID} {
					r := newAudit(w, "test.rename")
					r.Target = name
					if err := prepareAudit(r); err != nil {
						return err
					}
					g.appendAudit(r)
				}
				if fail {
					return errors.New("refused after writing")
				}
				return nil
			}}
		}
		batch := []groupOp{rename("first", false), rename("second", true), rename("third", false), rename("fourth", true)}
		w := &writer{s: s}
		defer w.release()
		s.runGroup(w, batch)
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
		for _, w := range []struct {
			id   string
			want []string
		}{{ws.ID, []string{"connection/x", "first", "third"}}, {other.ID, []string{"first", "third"}}} {
			var targets []string
			var prev *core.AuditRecord
			err := s.ScanAudit(ctx, w.id, func(r *core.AuditRecord) error {
				targets = append(targets, r.Target)
				var prevHash []byte
				if prev != nil {
					prevHash = prev.Hash
				}
				if r.Seq != int64(len(targets)) || string(r.PrevHash) != string(prevHash) || string(r.Hash) != string(r.ChainHash(prevHash)) {
					t.Errorf("workspace %s: record %d (seq %d) does not chain", w.id, len(targets), r.Seq)
				}
				prev = r
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(targets, w.want) {
				t.Errorf("workspace %s: audit targets %q, want %q", w.id, targets, w.want)
			}
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
