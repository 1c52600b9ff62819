package actions

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// raisingPurge raises the workspace's run retention to a year once the
// purge has deleted its first batch, as an admin might while a long purge
// is under way.
type raisingPurge struct {
	Store
	batches atomic.Int32
}

func (r *raisingPurge) PurgeRuns(ctx context.Context, workspaceID string, before time.Time, limit int) (int64, error) {
	n, err := r.Store.PurgeRuns(ctx, workspaceID, before, limit)
	if r.batches.Add(1) == 1 {
		days := 365
		if err := r.Store.UpdateWorkspaceRetention(ctx, workspaceID, core.RetentionUpdate{Retention: core.Retention{RunDays: &days}, SetRunDays: true}); err != nil {
			return n, err
		}
	}
	return n, err
}

// A retention raised while a workspace is being purged holds from the
// purge's next batch: the rows it keeps are not deleted by the pass that
// began under the old one.
func TestRaisedRetentionHoldsMidPurge(t *testing.T) {
	env := newReplicaEnv(t, sqlstoretest.SQLiteURL(t), t.TempDir())
	ctx := context.Background()
	const runs = 2*purgeBatch + purgeBatch/2
	at := time.Now().Add(-200 * 24 * time.Hour)
	for i := range runs {
		at := at.Add(time.Duration(i) * time.Millisecond) // ids are unique to the millisecond
		run := &core.Run{ID: core.IDFloor(at), WorkspaceID: env.caller.WorkspaceID, Action: "echo.echo", Connector: "echo", Version: "1.0.0",
			Runtime: core.RuntimeWASM, ConnectionID: core.NewID(), ConnectionName: "main", KeyID: core.NewID(),
			Status: core.RunSucceeded, CreatedAt: at, FinishedAt: &at}
		if _, err := env.store.StartExecution(ctx, run, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	store := &raisingPurge{Store: env.store}
	s := env.engineOn(store)
	n, err := s.PurgeRuns(ctx, 90)
	if err != nil {
		t.Fatal(err)
	}
	if n != purgeBatch || store.batches.Load() != 2 {
		t.Fatalf("purged %d runs in %d batches; want the first batch of %d, then none", n, store.batches.Load(), purgeBatch)
	}
	left, _, err := s.ListRuns(ctx, env.caller.WorkspaceID, core.RunFilter{}, core.Page{Limit: runs})
	if err != nil || len(left) != runs-purgeBatch {
		t.Fatalf("%d runs left, %v; want %d", len(left), err, runs-purgeBatch)
	}
}
