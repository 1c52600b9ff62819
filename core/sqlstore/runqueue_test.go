package sqlstore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// queuedRun is a queued run of owner (none when empty) with a sealed
// input.
func queuedRun(t *testing.T, s *Store, workspaceID, owner string) *core.Run {
	t.Helper()
	run := newRun(workspaceID, "webhook.send")
	run.Owner, run.Input = owner, []byte("sealed "+owner)
	mustStart(t, s, run, nil)
	// Runs are ordered by id, which orders them to the millisecond.
	time.Sleep(2 * time.Millisecond)
	return run
}

// A queued run is claimed only when no live engine holds it, once, oldest
// first, with its sealed input; a claimed run's new owner holds it until
// it too goes stale.
func TestClaimRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		now := time.Now().UTC()
		staleBefore := now.Add(-30 * time.Second)
		for id, beat := range map[string]time.Time{"live": now, "new": now, "dead": staleBefore.Add(-time.Second)} {
			if err := s.Heartbeat(ctx, id, beat); err != nil {
				t.Fatal(err)
			}
		}
		mine := queuedRun(t, s, w.ID, "live")
		deads := queuedRun(t, s, w.ID, "dead")
		unowned := queuedRun(t, s, w.ID, "")
		running := newRun(w.ID, "webhook.send")
		running.Owner, running.Status, running.StartedAt = "dead", core.RunRunning, &now
		mustStart(t, s, running, nil)

		got, err := s.ClaimRuns(ctx, "new", staleBefore, 1)
		if err != nil || len(got) != 1 || got[0].ID != deads.ID {
			t.Fatalf("ClaimRuns(limit 1) = %v, %v; want the oldest orphan %s", runIDs(got), err, deads.ID)
		}
		if got[0].Owner != "new" || string(got[0].Input) != "sealed dead" || got[0].Status != core.RunQueued {
			t.Errorf("claimed run %+v", got[0])
		}
		got, err = s.ClaimRuns(ctx, "new", staleBefore, 10)
		if err != nil || !slices.Equal(runIDs(got), []string{unowned.ID}) {
			t.Fatalf("second ClaimRuns = %v, %v; want %s", runIDs(got), err, unowned.ID)
		}
		if got, err := s.ClaimRuns(ctx, "other", staleBefore, 10); err != nil || len(got) != 0 {
			t.Fatalf("ClaimRuns with nothing left = %v, %v", runIDs(got), err)
		}
		if mustGetRun(t, s, w.ID, mine.ID).Owner != "live" || mustGetRun(t, s, w.ID, running.ID).Status != core.RunRunning {
			t.Error("a live owner's run, or a running run, was claimed")
		}
		q, err := s.QueuedRunsOf(ctx, "new")
		if err != nil || !slices.Equal(runIDs(q), []string{deads.ID, unowned.ID}) || string(q[0].Input) != "sealed dead" {
			t.Errorf("QueuedRunsOf(new) = %v, %v", runIDs(q), err)
		}
		// Once "new" stops, its runs are orphans again.
		if err := s.DeleteInstance(ctx, "new"); err != nil {
			t.Fatal(err)
		}
		got, err = s.ClaimRuns(ctx, "third", staleBefore, 10)
		if err != nil || len(got) != 2 {
			t.Errorf("ClaimRuns of a dead claimer's runs = %v, %v", runIDs(got), err)
		}
	})
}

// Engines claiming at once never take one run twice.
func TestClaimRunsConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		const n = 120
		for range n {
			queuedRun(t, s, w.ID, "")
		}
		var mu sync.Mutex
		claims := map[string][]string{}
		var wg sync.WaitGroup
		for e := range 4 {
			owner := []string{"e1", "e2", "e3", "e4"}[e]
			if err := s.Heartbeat(ctx, owner, time.Now()); err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := s.ClaimRuns(ctx, owner, time.Now().Add(-time.Minute), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, r := range got {
						claims[r.ID] = append(claims[r.ID], owner)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claims) != n {
			t.Errorf("%d runs claimed, want %d", len(claims), n)
		}
		for id, owners := range claims {
			if len(owners) != 1 {
				t.Errorf("run %s claimed by %v", id, owners)
			}
		}
	})
}

// An orphaned running run that may run again goes back to the queue,
// unowned and one attempt on, its key still in flight; the others are
// interrupted.
func TestInterruptOrphanedRunsRequeues(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		now := time.Now().UTC()
		safe := newRun(w.ID, "webhook.send")
		safe.Owner, safe.Status, safe.StartedAt = "dead", core.RunRunning, &now
		mustStart(t, s, safe, newClaim("safe"))
		unsafe := newRun(w.ID, "smtp.send")
		unsafe.Owner, unsafe.Status, unsafe.StartedAt = "dead", core.RunRunning, &now
		mustStart(t, s, unsafe, newClaim("unsafe"))

		interrupted, requeued, err := s.InterruptOrphanedRuns(ctx, now, now.Add(-time.Minute),
			func(*core.Run) (int, []byte) { return 500, []byte("interrupted") },
			func(r *core.Run) bool { return r.Action == "webhook.send" })
		if err != nil || interrupted != 1 || requeued != 1 {
			t.Fatalf("InterruptOrphanedRuns = %d, %d, %v; want 1 and 1", interrupted, requeued, err)
		}
		got := mustGetRun(t, s, w.ID, safe.ID)
		if got.Status != core.RunQueued || got.Owner != "" || got.StartedAt != nil || got.Attempt != 2 || got.FinishedAt != nil {
			t.Errorf("requeued run %+v", got)
		}
		if rec, err := s.Idempotency(ctx, w.ID, "safe", now); err != nil || rec.Done {
			t.Errorf("requeued run's key %+v, %v; want still in flight", rec, err)
		}
		if got := mustGetRun(t, s, w.ID, unsafe.ID); got.Status != core.RunInterrupted {
			t.Errorf("the other run is %s", got.Status)
		}
		claimed, err := s.ClaimRuns(ctx, "next", now.Add(-time.Minute), 10)
		if err != nil || !slices.Equal(runIDs(claimed), []string{safe.ID}) {
			t.Errorf("ClaimRuns = %v, %v; want the requeued run", runIDs(claimed), err)
		}
	})
}

// A run's sealed input outlives a failure, for a retry, and goes when the
// run succeeds; an async key keeps the 202 it was answered with.
func TestFinishKeepsInputAndAsyncAnswer(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		failed := queuedRun(t, s, w.ID, "e")
		succeeded := newRun(w.ID, "webhook.send")
		succeeded.Input = []byte("sealed")
		mustStart(t, s, succeeded, &core.IdempotencyRecord{Key: "async", RequestHash: []byte("h"),
			Done: true, Status: 202, Body: []byte("accepted")})

		failed.Status, failed.Error = core.RunFailed, &core.RunError{Code: core.EUpstreamFailed, Message: "no"}
		succeeded.Status = core.RunSucceeded
		for _, r := range []*core.Run{failed, succeeded} {
			if err := s.FinishExecution(ctx, r, r.IdempotencyKey, 200, []byte("finished"), nil); err != nil {
				t.Fatal(err)
			}
		}
		if in, err := s.RunInput(ctx, w.ID, failed.ID); err != nil || string(in) != "sealed e" {
			t.Errorf("failed run's input %q, %v", in, err)
		}
		if in, err := s.RunInput(ctx, w.ID, succeeded.ID); err != nil || in != nil {
			t.Errorf("succeeded run's input %q, %v; want none", in, err)
		}
		if rec, err := s.Idempotency(ctx, w.ID, "async", time.Now()); err != nil || rec.Status != 202 || string(rec.Body) != "accepted" {
			t.Errorf("async key's record %+v, %v; want its 202 kept", rec, err)
		}
		wantCode(t, func() error { _, err := s.RunInput(ctx, w.ID, core.NewID()); return err }(), core.ENotFound)
	})
}

// A run has at most one retry, which RetryOf finds.
func TestRetryOf(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		first := queuedRun(t, s, w.ID, "")
		retry := newRun(w.ID, "webhook.send")
		retry.RetryOf = first.ID
		mustStart(t, s, retry, nil)
		if got, err := s.RetryOf(ctx, w.ID, first.ID); err != nil || got.ID != retry.ID || got.RetryOf != first.ID {
			t.Fatalf("RetryOf = %+v, %v", got, err)
		}
		second := newRun(w.ID, "webhook.send")
		second.RetryOf = first.ID
		_, err := s.StartExecution(ctx, second, nil, nil)
		wantCode(t, err, core.EConflict)
		_, err = s.RetryOf(ctx, w.ID, retry.ID)
		wantCode(t, err, core.ENotFound)
		other := mustCreateWorkspace(t, s, "other")
		_, err = s.RetryOf(ctx, other.ID, first.ID)
		wantCode(t, err, core.ENotFound)
	})
}

func runIDs(runs []*core.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}
