package sqlstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// oldRun stores a run of the workspace made at at, in status.
func oldRun(t *testing.T, s *Store, workspaceID string, at time.Time, status core.RunStatus) string {
	t.Helper()
	run := newRun(workspaceID, "echo.echo")
	run.ID, run.CreatedAt, run.Status = core.IDFloor(at), at, status
	mustStart(t, s, run, nil)
	return run.ID
}

// PurgeRuns deletes the ended runs made before its time, a batch at a
// time, oldest first; never an unfinished run, a newer one or another
// workspace's.
func TestPurgeRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "w")
		other := mustCreateWorkspace(t, s, "other")
		cutoff := time.Now().Add(-90 * 24 * time.Hour)
		var old []string
		for i := range 7 {
			old = append(old, oldRun(t, s, w.ID, cutoff.Add(-time.Duration(7-i)*time.Hour), []core.RunStatus{core.RunSucceeded, core.RunFailed, core.RunInterrupted}[i%3]))
		}
		stuck := oldRun(t, s, w.ID, cutoff.Add(-time.Hour-time.Millisecond), core.RunRunning)
		recent := oldRun(t, s, w.ID, cutoff.Add(time.Hour), core.RunSucceeded)
		theirs := oldRun(t, s, other.ID, cutoff.Add(-5*time.Hour-3*time.Millisecond), core.RunSucceeded)

		n, err := s.PurgeRuns(ctx, w.ID, cutoff, 3)
		if err != nil || n != 3 {
			t.Fatalf("first batch: %d, %v", n, err)
		}
		left := func(ws string) []string {
			runs, _, err := s.ListRuns(ctx, ws, core.RunFilter{}, core.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range runs {
				ids = append(ids, r.ID)
			}
			slices.Sort(ids)
			return ids
		}
		if got := left(w.ID); !slices.Contains(got, old[3]) || slices.Contains(got, old[2]) {
			t.Errorf("after a batch of 3 (the oldest go first): %v", got)
		}
		for {
			n, err := s.PurgeRuns(ctx, w.ID, cutoff, 3)
			if err != nil {
				t.Fatal(err)
			}
			if n < 3 {
				break
			}
		}
		want := []string{stuck, recent}
		slices.Sort(want)
		if got := left(w.ID); !slices.Equal(got, want) {
			t.Errorf("left %v, want the running and the recent run %v", got, want)
		}
		if got := left(other.ID); !slices.Equal(got, []string{theirs}) {
			t.Errorf("the other workspace's runs: %v", got)
		}
		if _, err := s.PurgeRuns(ctx, w.ID, cutoff, 0); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("a limit of 0: %v", err)
		}

		days := 30
		if err := s.SetWorkspaceRunRetention(ctx, w.ID, &days); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Workspace(ctx, w.ID); err != nil || got.RunRetentionDays == nil || *got.RunRetentionDays != 30 {
			t.Errorf("workspace %+v, %v", got, err)
		}
		if err := s.SetWorkspaceRunRetention(ctx, w.ID, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Workspace(ctx, w.ID); got.RunRetentionDays != nil {
			t.Errorf("back to the default: %+v", got)
		}
		for _, bad := range []int{0, -1, core.MaxRunRetentionDays + 1} {
			if err := s.SetWorkspaceRunRetention(ctx, w.ID, &bad); core.ErrorCode(err) != core.EInvalid {
				t.Errorf("%d days: %v", bad, err)
			}
		}
		if err := s.SetWorkspaceRunRetention(ctx, "nope", &days); core.ErrorCode(err) != core.ENotFound {
			t.Errorf("an unknown workspace: %v", err)
		}
	})
}
