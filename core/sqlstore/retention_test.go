package sqlstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
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

	})
}

// A workspace's retention settings change together or not at all, and
// each goes back to the server's default with nil.
func TestUpdateWorkspaceRetention(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		get := func() core.Retention {
			t.Helper()
			got, err := s.Workspace(ctx, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Retention
		}
		show := func(r core.Retention) string {
			var parts []string
			for _, v := range []*int{r.RunDays, r.AuditDays, r.IdempotencyHours} {
				if v == nil {
					parts = append(parts, "default")
				} else {
					parts = append(parts, strconv.Itoa(*v))
				}
			}
			return strings.Join(parts, " ")
		}
		n := func(v int) *int { return &v }
		steps := []struct {
			u    core.RetentionUpdate
			want string
		}{
			{core.RetentionUpdate{Retention: core.Retention{RunDays: n(30)}, SetRunDays: true}, "30 default default"},
			{core.RetentionUpdate{Retention: core.Retention{AuditDays: n(400), IdempotencyHours: n(48)}, SetAuditDays: true, SetIdempotencyHours: true}, "30 400 48"},
			// Not marked set: left alone.
			{core.RetentionUpdate{Retention: core.Retention{RunDays: n(1), AuditDays: nil}, SetAuditDays: true}, "30 default 48"},
			{core.RetentionUpdate{SetRunDays: true, SetIdempotencyHours: true}, "default default default"},
			{core.RetentionUpdate{Retention: core.Retention{RunDays: n(core.MaxRunRetentionDays), AuditDays: n(core.MaxAuditRetentionDays),
				IdempotencyHours: n(core.MaxIdempotencyRetentionHours)}, SetRunDays: true, SetAuditDays: true, SetIdempotencyHours: true}, "3650 3650 720"},
		}
		for _, step := range steps {
			if err := s.UpdateWorkspaceRetention(ctx, w.ID, step.u); err != nil {
				t.Fatalf("%+v: %v", step.u, err)
			}
			if got := show(get()); got != step.want {
				t.Fatalf("after %+v: %s, want %s", step.u, got, step.want)
			}
		}
		before := show(get())
		for _, bad := range []core.RetentionUpdate{
			{Retention: core.Retention{RunDays: n(0)}, SetRunDays: true},
			{Retention: core.Retention{RunDays: n(7), AuditDays: n(-1)}, SetRunDays: true, SetAuditDays: true},
			{Retention: core.Retention{RunDays: n(7), AuditDays: n(core.MaxAuditRetentionDays + 1)}, SetRunDays: true, SetAuditDays: true},
			{Retention: core.Retention{RunDays: n(7), IdempotencyHours: n(core.MaxIdempotencyRetentionHours + 1)}, SetRunDays: true, SetIdempotencyHours: true},
			{Retention: core.Retention{IdempotencyHours: n(0)}, SetIdempotencyHours: true},
			{}, // nothing to change
		} {
			if err := s.UpdateWorkspaceRetention(ctx, w.ID, bad); core.ErrorCode(err) != core.EInvalid {
				t.Errorf("%+v: %v, want invalid", bad, err)
			}
			if got := show(get()); got != before {
				t.Fatalf("%+v changed the settings: %s, were %s", bad, got, before)
			}
		}
		if err := s.UpdateWorkspaceRetention(ctx, "nope", steps[0].u); core.ErrorCode(err) != core.ENotFound {
			t.Errorf("an unknown workspace: %v", err)
		}
	})
}
