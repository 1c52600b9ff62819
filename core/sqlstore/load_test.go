package sqlstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// GroupStats counts what the group writer does: writes waiting while a
// group holds the writer, the time it is busy, the groups and writes,
// and the time writes wait for their answer.
func TestGroupStats(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		before := s.GroupStats()
		wantWriters := 1
		if s.Dialect() == "postgres" {
			wantWriters = pgGroupWorkers
		}
		if before.Writers != wantWriters || before.Waiting != 0 {
			t.Fatalf("before: %+v, want %d writers and none waiting", before, wantWriters)
		}

		// A write that holds its group, on each writer, until released,
		// and appends behind them: all of them wait until they let go.
		// Each held write is handed in once the previous one holds its
		// writer, so that no two share a group.
		const hold = 50 * time.Millisecond
		release := make(chan struct{})
		held := wantWriters + 3
		errs := make(chan error, held)
		for range wantWriters {
			started := make(chan struct{})
			go func() {
				errs <- s.inGroupTx(ctx, func(context.Context, *groupTx) error {
					close(started)
					<-release
					return nil
				})
			}()
			<-started
		}
		for range 3 {
			go func() { errs <- s.AppendAudit(ctx, newAudit(ws.ID, "test.wait")) }()
		}
		deadline := time.Now().Add(10 * time.Second)
		for s.GroupStats().Waiting != int64(held) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting: %+v, want %d", s.GroupStats(), held)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(hold)
		close(release)
		for range held {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}

		after := s.GroupStats()
		if after.Waiting != 0 {
			t.Errorf("%d writes still waiting once all were answered", after.Waiting)
		}
		writes, groups := after.Writes-before.Writes, after.Groups-before.Groups
		// The three appends may share a group, or not.
		if writes != uint64(held) || groups < uint64(wantWriters+1) || groups > uint64(held) {
			t.Errorf("%d writes in %d groups, want %d writes in %d to %d groups", writes, groups, held, wantWriters+1, held)
		}
		if busy := after.Busy - before.Busy; busy < time.Duration(wantWriters)*hold {
			t.Errorf("busy %s, want at least the %s each writer was held", busy, hold)
		}
		// Every one of them waited at least as long as the writers were
		// held after the last was handed in.
		if waited := after.Waited - before.Waited; waited < time.Duration(held)*hold {
			t.Errorf("waited %s in all, want at least %d × %s", waited, held, hold)
		}
	})
}

// AuditFrom reads a workspace's records from a seq on, and no other
// workspace's.
func TestAuditFrom(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		for range 5 {
			mustAppendAudit(t, s, newAudit(ws.ID, "test.one"))
			mustAppendAudit(t, s, newAudit(other.ID, "test.other"))
		}
		for _, c := range []struct {
			from  int64
			limit int
			want  []int64
		}{
			{1, 10, []int64{1, 2, 3, 4, 5}},
			{3, 2, []int64{3, 4}},
			{5, 10, []int64{5}},
			{6, 10, nil},
		} {
			got, err := s.AuditFrom(ctx, ws.ID, c.from, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, r := range got {
				if r.WorkspaceID != ws.ID || !hashChains(r) {
					t.Errorf("from %d: record %+v", c.from, r)
				}
				seqs = append(seqs, r.Seq)
			}
			if !slices.Equal(seqs, c.want) {
				t.Errorf("from %d limit %d: seqs %v, want %v", c.from, c.limit, seqs, c.want)
			}
		}
	})
}

// hashChains reports whether r's hash is that of its content as read back.
func hashChains(r *core.AuditRecord) bool {
	return string(r.Hash) == string(r.ChainHash(r.PrevHash))
}
