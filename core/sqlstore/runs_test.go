package sqlstore

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// newRun returns a queued run of the workspace, not yet stored.
func newRun(workspaceID, action string) *core.Run {
	connector, _, _ := strings.Cut(action, ".")
	return &core.Run{
		WorkspaceID:    workspaceID,
		Action:         action,
		Connector:      connector,
		Version:        "1.0.0",
		Runtime:        "native",
		ConnectionID:   core.NewID(),
		ConnectionName: "main",
		KeyID:          core.NewID(),
		Status:         core.RunQueued,
		Params:         json.RawMessage(`{"to": "a@example.com", "password": "[REDACTED]"}`),
	}
}

func newClaim(key string) *core.IdempotencyRecord {
	return &core.IdempotencyRecord{Key: key, RequestHash: []byte("hash of the request")}
}

func mustStart(t testing.TB, s *Store, run *core.Run, idem *core.IdempotencyRecord) {
	t.Helper()
	existing, err := s.StartExecution(context.Background(), run, idem, nil)
	if err != nil || existing != nil {
		t.Fatalf("StartExecution = %+v, %v; want a claim", existing, err)
	}
}

func mustGetRun(t *testing.T, s *Store, workspaceID, id string) *core.Run {
	t.Helper()
	got, err := s.Run(context.Background(), workspaceID, id)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return got
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.db.GetContext(context.Background(), &n, `SELECT COUNT(*) FROM `+table); err != nil {
		t.Fatal(err)
	}
	return n
}

// The run, its times, its claim and its audit record all come back as they
// were stored.
func TestExecutionRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		zone := time.FixedZone("UTC+9", 9*3600)
		run := newRun(w.ID, "webhook.send")
		run.Owner, run.ConnectorKey = "engine-1", "ck_1"
		run.CreatedAt = time.Date(2030, 5, 6, 7, 8, 9, 123456789, zone)
		audit := newAudit("", "action.execute")
		existing, err := s.StartExecution(ctx, run, newClaim("k1"), audit)
		if err != nil || existing != nil {
			t.Fatalf("StartExecution = %+v, %v", existing, err)
		}
		if !core.ValidID(run.ID) || run.IdempotencyKey != "k1" || audit.Seq != 1 || audit.WorkspaceID != w.ID {
			t.Fatalf("after StartExecution: run %+v, audit %+v", run, audit)
		}
		if want := time.Date(2030, 5, 5, 22, 8, 9, 123456000, time.UTC); run.CreatedAt != want {
			t.Errorf("CreatedAt left %v, want %v", run.CreatedAt, want)
		}
		if got := mustGetRun(t, s, w.ID, run.ID); !reflect.DeepEqual(got, run) {
			t.Errorf("Run = %+v\nwant %+v", got, run)
		}

		started := time.Date(2030, 5, 6, 7, 8, 10, 999999999, zone)
		// Only the run's owner may start it.
		wantCode(t, s.MarkRunning(ctx, w.ID, run.ID, "engine-2", started), core.EConflict)
		if err := s.MarkRunning(ctx, w.ID, run.ID, "engine-1", started); err != nil {
			t.Fatalf("MarkRunning: %v", err)
		}
		wantCode(t, s.MarkRunning(ctx, w.ID, run.ID, "engine-1", started), core.EConflict)
		wantCode(t, s.MarkRunning(ctx, w.ID, core.NewID(), "engine-1", started), core.ENotFound)

		finished := time.Date(2030, 5, 6, 7, 8, 11, 5000, zone)
		run.Status = core.RunFailed
		run.Error = &core.RunError{Code: "upstream_retryable", Message: "503 from the sink", Retryable: true}
		run.Output = json.RawMessage(`{"status":  503}`)
		run.FinishedAt = &finished
		if err := s.FinishExecution(ctx, run, "k1", 502, []byte(`{"error":"x"}`), newAudit(w.ID, "action.execute")); err != nil {
			t.Fatalf("FinishExecution: %v", err)
		}
		wantStarted := started.UTC().Truncate(time.Microsecond)
		if run.StartedAt == nil || *run.StartedAt != wantStarted {
			t.Errorf("FinishExecution left StartedAt %v, want the stored %v", run.StartedAt, wantStarted)
		}
		got := mustGetRun(t, s, w.ID, run.ID)
		if !reflect.DeepEqual(got, run) {
			t.Errorf("finished Run = %+v\nwant %+v", got, run)
		}
		if *got.FinishedAt != finished.UTC().Truncate(time.Microsecond) {
			t.Errorf("FinishedAt %v", got.FinishedAt)
		}
		// A final status never changes.
		run.Status = core.RunSucceeded
		wantCode(t, s.FinishExecution(ctx, run, "k1", 200, nil, nil), core.EConflict)
		verifyChain(t, scanAll(t, s, w.ID))
		if n := len(scanAll(t, s, w.ID)); n != 2 {
			t.Errorf("%d audit records, want 2", n)
		}
	})
}

// A run finished without MarkRunning gets its finish time as start time.
func TestFinishExecutionSetsMissingStart(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		w := mustCreateWorkspace(t, s, "acme")
		run := newRun(w.ID, "echo.echo")
		mustStart(t, s, run, nil)
		run.Status = core.RunSucceeded
		run.Output = json.RawMessage(`{"echo":"hi"}`)
		if err := s.FinishExecution(context.Background(), run, "", 0, nil, nil); err != nil {
			t.Fatal(err)
		}
		got := mustGetRun(t, s, w.ID, run.ID)
		if got.FinishedAt == nil || got.StartedAt == nil || *got.StartedAt != *got.FinishedAt {
			t.Errorf("started %v, finished %v; want both, equal", got.StartedAt, got.FinishedAt)
		}
		if got.Error != nil || string(got.Output) != `{"echo":"hi"}` {
			t.Errorf("Run = %+v", got)
		}
		run.Status = core.RunRunning
		wantCode(t, s.FinishExecution(context.Background(), run, "", 0, nil, nil), core.EInvalid)
	})
}

func TestIdempotencyClaim(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		first := newRun(w.ID, "webhook.send")
		claim := newClaim("key-1")
		mustStart(t, s, first, claim)

		// While the first runs, a retry finds it in flight and stores
		// nothing.
		retry := newRun(w.ID, "webhook.send")
		existing, err := s.StartExecution(ctx, retry, newClaim("key-1"), newAudit(w.ID, "action.execute"))
		if err != nil {
			t.Fatal(err)
		}
		if existing == nil || existing.Done || existing.RunID != first.ID || string(existing.RequestHash) != "hash of the request" {
			t.Fatalf("in-flight existing = %+v", existing)
		}
		if existing.CreatedAt != claim.CreatedAt || existing.ExpiresAt != claim.CreatedAt.Add(core.IdempotencyTTL) {
			t.Errorf("existing times %v, %v; claim made at %v", existing.CreatedAt, existing.ExpiresAt, claim.CreatedAt)
		}
		_, err = s.Run(ctx, w.ID, retry.ID)
		wantCode(t, err, core.ENotFound)
		if n := countRows(t, s, "audit_records"); n != 0 {
			t.Errorf("a refused claim appended %d audit records", n)
		}

		first.Status = core.RunSucceeded
		if err := s.FinishExecution(ctx, first, "key-1", 200, []byte(`{"ok":true}`), nil); err != nil {
			t.Fatal(err)
		}
		existing, err = s.StartExecution(ctx, newRun(w.ID, "webhook.send"), newClaim("key-1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if existing == nil || !existing.Done || existing.Status != 200 || string(existing.Body) != `{"ok":true}` || existing.RunID != first.ID {
			t.Fatalf("done existing = %+v", existing)
		}

		looked, err := s.Idempotency(ctx, w.ID, "key-1", time.Now())
		if err != nil || !reflect.DeepEqual(looked, existing) {
			t.Errorf("Idempotency = %+v, %v\nwant %+v", looked, err, existing)
		}
		_, err = s.Idempotency(ctx, w.ID, "key-1", existing.ExpiresAt)
		wantCode(t, err, core.ENotFound)
		_, err = s.Idempotency(ctx, w.ID, "key-2", time.Now())
		wantCode(t, err, core.ENotFound)

		// The same key in another workspace is another key.
		other := mustCreateWorkspace(t, s, "other")
		_, err = s.Idempotency(ctx, other.ID, "key-1", time.Now())
		wantCode(t, err, core.ENotFound)
		mustStart(t, s, newRun(other.ID, "webhook.send"), newClaim("key-1"))
	})
}

func TestExpiredIdempotencyRecordIsReplaced(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		old := newRun(w.ID, "webhook.send")
		claim := newClaim("k")
		claim.CreatedAt = time.Now().Add(-25 * time.Hour)
		mustStart(t, s, old, claim)

		fresh := newRun(w.ID, "webhook.send")
		freshClaim := newClaim("k")
		freshClaim.RequestHash = []byte("another request")
		mustStart(t, s, fresh, freshClaim)

		// The old run's finish no longer touches the key, which is the
		// fresh run's now.
		old.Status = core.RunSucceeded
		if err := s.FinishExecution(ctx, old, "k", 200, []byte("old"), nil); err != nil {
			t.Fatal(err)
		}
		existing, err := s.StartExecution(ctx, newRun(w.ID, "webhook.send"), newClaim("k"), nil)
		if err != nil || existing == nil || existing.Done || existing.RunID != fresh.ID || string(existing.RequestHash) != "another request" {
			t.Fatalf("existing = %+v, %v; want the fresh claim, in flight", existing, err)
		}
	})
}

func TestStartExecutionRefuses(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		taken := newRun(w.ID, "echo.echo")
		mustStart(t, s, taken, nil)
		tests := []struct {
			name     string
			run      func(r *core.Run)
			idem     func(i *core.IdempotencyRecord)
			audit    *core.AuditRecord
			wantCode string
		}{
			{"taken run id", func(r *core.Run) { r.ID = taken.ID }, nil, nil, core.EConflict},
			{"unknown workspace", func(r *core.Run) { r.WorkspaceID = core.NewID() }, nil, nil, core.ENotFound},
			{"unknown workspace, keyed", func(r *core.Run) { r.WorkspaceID = core.NewID() }, func(*core.IdempotencyRecord) {}, nil, core.ENotFound},
			{"bad status", func(r *core.Run) { r.Status = "done" }, nil, nil, core.EInvalid},
			{"params not JSON", func(r *core.Run) { r.Params = json.RawMessage("{") }, nil, nil, core.EInvalid},
			{"malformed id", func(r *core.Run) { r.ID = "run-1" }, nil, nil, core.EInvalid},
			{"long key", nil, func(i *core.IdempotencyRecord) { i.Key = strings.Repeat("k", 256) }, nil, core.EInvalid},
			{"no request hash", nil, func(i *core.IdempotencyRecord) { i.RequestHash = nil }, nil, core.EInvalid},
			{"key of another workspace", nil, func(i *core.IdempotencyRecord) { i.WorkspaceID = other.ID }, nil, core.EInvalid},
			{"audit of another workspace", nil, nil, newAudit(other.ID, "action.execute"), core.EInvalid},
			// The run is stored only with its audit record.
			{"audit refused", nil, nil, newAudit("", ""), core.EInvalid},
		}
		for _, tt := range tests {
			run := newRun(w.ID, "echo.echo")
			if tt.run != nil {
				tt.run(run)
			}
			var idem *core.IdempotencyRecord
			if tt.idem != nil {
				idem = newClaim("k-" + tt.name)
				tt.idem(idem)
			}
			_, err := s.StartExecution(ctx, run, idem, tt.audit)
			if got := core.ErrorCode(err); got != tt.wantCode {
				t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.wantCode)
			}
		}
		if n := countRows(t, s, "runs"); n != 1 {
			t.Errorf("%d runs after refused starts, want 1", n)
		}
		if n := countRows(t, s, "idempotency_records"); n != 0 {
			t.Errorf("%d idempotency records after refused starts, want 0", n)
		}
	})
}

// Of many concurrent requests with one key, exactly one claims it and
// stores its run.
func TestIdempotencyClaimConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		w := mustCreateWorkspace(t, s, "acme")
		const n = 20
		var claimed, replayed atomic.Int32
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				existing, err := s.StartExecution(context.Background(), newRun(w.ID, "webhook.send"), newClaim("same"),
					newAudit(w.ID, "action.execute"))
				switch {
				case err != nil:
					t.Errorf("StartExecution: %v", err)
				case existing == nil:
					claimed.Add(1)
				default:
					replayed.Add(1)
				}
			})
		}
		wg.Wait()
		if claimed.Load() != 1 || replayed.Load() != n-1 {
			t.Errorf("%d claimed, %d found it held; want 1 and %d", claimed.Load(), replayed.Load(), n-1)
		}
		if got := countRows(t, s, "runs"); got != 1 {
			t.Errorf("%d runs stored, want 1", got)
		}
		verifyChain(t, scanAll(t, s, w.ID))
		if got := countRows(t, s, "audit_records"); got != 1 {
			t.Errorf("%d audit records, want 1", got)
		}
	})
}

// Runs without an owner (stored before runs had owners) are all orphaned.
func TestInterruptOrphanedRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		queued := newRun(a.ID, "echo.echo")
		mustStart(t, s, queued, nil)
		running := newRun(b.ID, "webhook.send")
		running.Owner = "gone"
		mustStart(t, s, running, newClaim("k"))
		if err := s.MarkRunning(ctx, b.ID, running.ID, "gone", time.Now()); err != nil {
			t.Fatal(err)
		}
		done := newRun(a.ID, "echo.echo")
		mustStart(t, s, done, newClaim("done"))
		done.Status = core.RunSucceeded
		if err := s.FinishExecution(ctx, done, "done", 200, []byte("first"), nil); err != nil {
			t.Fatal(err)
		}

		at := time.Date(2030, 1, 1, 0, 0, 0, 1500, time.UTC)
		var responded []string
		n, requeued, err := s.InterruptOrphanedRuns(ctx, at, at.Add(-time.Minute), func(r *core.Run) (int, []byte) {
			responded = append(responded, r.ID)
			if r.Status != core.RunInterrupted || r.Error == nil || r.Error.Code != core.ERunInterrupted {
				t.Errorf("responder given %+v", r)
			}
			return 500, []byte(`{"code":"interrupted"}`)
		}, nil)
		if err != nil || n != 1 || requeued != 0 {
			t.Fatalf("InterruptOrphanedRuns = %d, %d, %v; want 1 interrupted", n, requeued, err)
		}
		// Only keyed runs need a response.
		if !slices.Equal(responded, []string{running.ID}) {
			t.Errorf("responder called for %v, want only %s", responded, running.ID)
		}
		wantAt := at.Truncate(time.Microsecond)
		got := mustGetRun(t, s, running.WorkspaceID, running.ID)
		wantErr := &core.RunError{Code: core.ERunInterrupted, Message: "the server stopped during the run; it may or may not have taken effect", Retryable: false}
		if got.Status != core.RunInterrupted || got.FinishedAt == nil || *got.FinishedAt != wantAt || !reflect.DeepEqual(got.Error, wantErr) {
			t.Errorf("interrupted run = %+v", got)
		}
		// A queued run never began: it waits for ClaimRuns.
		if got := mustGetRun(t, s, queued.WorkspaceID, queued.ID); got.Status != core.RunQueued {
			t.Errorf("queued orphan became %s", got.Status)
		}
		if got := mustGetRun(t, s, done.WorkspaceID, done.ID); got.Status != core.RunSucceeded {
			t.Errorf("finished run became %s", got.Status)
		}
		existing, err := s.StartExecution(ctx, newRun(b.ID, "webhook.send"), newClaim("k"), nil)
		if err != nil || existing == nil || !existing.Done || existing.Status != 500 || string(existing.Body) != `{"code":"interrupted"}` {
			t.Errorf("key of the interrupted run = %+v, %v", existing, err)
		}
		existing, err = s.StartExecution(ctx, newRun(a.ID, "echo.echo"), newClaim("done"), nil)
		if err != nil || existing == nil || string(existing.Body) != "first" {
			t.Errorf("key of the finished run = %+v, %v", existing, err)
		}

		// The interrupted run's own late finish is refused.
		running.Status = core.RunSucceeded
		wantCode(t, s.FinishExecution(ctx, running, "k", 200, nil, nil), core.EConflict)
		n, _, err = s.InterruptOrphanedRuns(ctx, at, at.Add(-time.Minute), func(*core.Run) (int, []byte) { return 0, nil }, nil)
		if err != nil || n != 0 {
			t.Errorf("second InterruptOrphanedRuns = %d, %v", n, err)
		}
	})
}

// Only the runs whose owner is not alive are interrupted: a live owner's
// runs are left alone; a stale owner's, a missing owner's and a deleted
// owner's are interrupted.
func TestInterruptOrphanedRunsByOwner(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		now := time.Now().UTC()
		staleBefore := now.Add(-30 * time.Second)
		for id, beat := range map[string]time.Time{
			"live":    now.Add(-time.Second),
			"edge":    staleBefore, // exactly at the threshold: still alive
			"stale":   staleBefore.Add(-time.Microsecond),
			"deleted": now,
		} {
			if err := s.Heartbeat(ctx, id, beat); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteInstance(ctx, "deleted"); err != nil {
			t.Fatal(err)
		}
		runs := map[string]*core.Run{}
		for _, owner := range []string{"live", "edge", "stale", "missing", "deleted"} {
			run := newRun(w.ID, "webhook.send")
			run.Owner, run.Status, run.StartedAt = owner, core.RunRunning, &now
			mustStart(t, s, run, newClaim("key-"+owner))
			runs[owner] = run
			if got := mustGetRun(t, s, w.ID, run.ID); got.Owner != owner {
				t.Fatalf("stored owner %q, want %q", got.Owner, owner)
			}
		}
		var responded []string
		n, _, err := s.InterruptOrphanedRuns(ctx, now, staleBefore, func(r *core.Run) (int, []byte) {
			responded = append(responded, r.Owner)
			return 500, []byte(`{"code":"run_interrupted"}`)
		}, nil)
		if err != nil || n != 3 {
			t.Fatalf("InterruptOrphanedRuns = %d, %v; want 3", n, err)
		}
		slices.Sort(responded)
		if !slices.Equal(responded, []string{"deleted", "missing", "stale"}) {
			t.Errorf("responder called for the runs of %v", responded)
		}
		for owner, run := range runs {
			got := mustGetRun(t, s, w.ID, run.ID)
			orphan := owner == "stale" || owner == "missing" || owner == "deleted"
			if orphan != (got.Status == core.RunInterrupted) {
				t.Errorf("run of %s: %s", owner, got.Status)
			}
			rec, err := s.Idempotency(ctx, w.ID, "key-"+owner, now)
			if err != nil || rec.Done != orphan {
				t.Errorf("key of the run of %s: %+v, %v", owner, rec, err)
			}
		}
		// The live owner finishes its run as usual.
		live := runs["live"]
		live.Status = core.RunSucceeded
		if err := s.FinishExecution(ctx, live, "key-live", 200, []byte("ok"), nil); err != nil {
			t.Errorf("live owner's finish: %v", err)
		}
		// Nothing more to do: no write at all.
		if n, _, err := s.InterruptOrphanedRuns(ctx, now, staleBefore, func(*core.Run) (int, []byte) { return 0, nil }, nil); err != nil || n != 0 {
			t.Errorf("second InterruptOrphanedRuns = %d, %v", n, err)
		}
		// Once the edge owner misses its beats, its run goes too.
		if n, _, err := s.InterruptOrphanedRuns(ctx, now, staleBefore.Add(time.Second), func(*core.Run) (int, []byte) { return 0, nil }, nil); err != nil || n != 1 {
			t.Errorf("InterruptOrphanedRuns after the edge owner went stale = %d, %v; want 1", n, err)
		}
	})
}

// A heartbeat inserts the instance's record once and then moves only its
// heartbeat; dead instances are deleted by their last heartbeat.
func TestHeartbeatAndDeadInstances(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		type instance struct {
			ID          string    `db:"id"`
			StartedAt   time.Time `db:"started_at"`
			HeartbeatAt time.Time `db:"heartbeat_at"`
		}
		read := func() []instance {
			t.Helper()
			var got []instance
			if err := s.db.SelectContext(ctx, &got, `SELECT id, started_at, heartbeat_at FROM instances ORDER BY id`); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].StartedAt, got[i].HeartbeatAt = got[i].StartedAt.UTC(), got[i].HeartbeatAt.UTC()
			}
			return got
		}
		wantCode(t, s.Heartbeat(ctx, "", t0), core.EInvalid)
		for _, beat := range []struct {
			id string
			at time.Time
		}{{"a", t0}, {"b", t0}, {"a", t0.Add(5 * time.Second)}, {"b", t0.Add(2 * time.Hour)}} {
			if err := s.Heartbeat(ctx, beat.id, beat.at); err != nil {
				t.Fatal(err)
			}
		}
		want := []instance{{"a", t0, t0.Add(5 * time.Second)}, {"b", t0, t0.Add(2 * time.Hour)}}
		if got := read(); !reflect.DeepEqual(got, want) {
			t.Fatalf("instances = %+v, want %+v", got, want)
		}
		n, err := s.DeleteDeadInstances(ctx, t0.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("DeleteDeadInstances = %d, %v; want 1", n, err)
		}
		if got := read(); len(got) != 1 || got[0].ID != "b" {
			t.Fatalf("instances after the cleanup = %+v", got)
		}
		if err := s.DeleteInstance(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteInstance(ctx, "never-there"); err != nil {
			t.Fatal(err)
		}
		if got := read(); len(got) != 0 {
			t.Fatalf("instances after deleting = %+v", got)
		}
	})
}

func TestListRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		var all, echoes, failed []string
		var made []time.Time // just before each run of all
		for i := range 9 {
			made = append(made, time.Now())
			action := "echo.echo"
			if i%3 == 0 {
				action = "webhook.send"
			}
			run := newRun(w.ID, action)
			mustStart(t, s, run, nil)
			if i%2 == 0 {
				run.Status = core.RunFailed
				if err := s.FinishExecution(ctx, run, "", 0, nil, nil); err != nil {
					t.Fatal(err)
				}
				failed = append(failed, run.ID)
			}
			if action == "echo.echo" {
				echoes = append(echoes, run.ID)
			}
			all = append(all, run.ID)
			mustStart(t, s, newRun(other.ID, action), nil)
			time.Sleep(2 * time.Millisecond) // ids order by creation to the millisecond
		}
		newestFirst := func(ids []string) []string {
			ids = slices.Clone(ids)
			slices.Reverse(ids)
			return ids
		}
		list := func(f core.RunFilter, limit int) ([]string, int) {
			t.Helper()
			var ids []string
			pages := 0
			cursor := ""
			for {
				pages++
				runs, next, err := s.ListRuns(ctx, w.ID, f, core.Page{Limit: limit, Cursor: cursor})
				if err != nil {
					t.Fatalf("ListRuns(%+v): %v", f, err)
				}
				for _, r := range runs {
					if r.WorkspaceID != w.ID {
						t.Fatalf("listed %+v", r)
					}
					ids = append(ids, r.ID)
				}
				if next == "" || pages > 10 {
					return ids, pages
				}
				cursor = next
			}
		}
		if got, pages := list(core.RunFilter{}, 4); !slices.Equal(got, newestFirst(all)) || pages != 3 {
			t.Errorf("all runs: %v in %d pages\nwant %v in 3", got, pages, newestFirst(all))
		}
		if got, _ := list(core.RunFilter{Action: "echo.echo"}, 2); !slices.Equal(got, newestFirst(echoes)) {
			t.Errorf("echo runs: %v\nwant %v", got, newestFirst(echoes))
		}
		if got, _ := list(core.RunFilter{Status: core.RunFailed}, 2); !slices.Equal(got, newestFirst(failed)) {
			t.Errorf("failed runs: %v\nwant %v", got, newestFirst(failed))
		}
		var failedEchoes []string
		for _, id := range echoes {
			if slices.Contains(failed, id) {
				failedEchoes = append(failedEchoes, id)
			}
		}
		if got, _ := list(core.RunFilter{Action: "echo.echo", Status: core.RunFailed}, 1); !slices.Equal(got, newestFirst(failedEchoes)) {
			t.Errorf("failed echo runs: %v\nwant %v", got, newestFirst(failedEchoes))
		}

		// Time bounds: Since included, Until not, with and without a cursor.
		if got, pages := list(core.RunFilter{Since: made[3], Until: made[7]}, 3); !slices.Equal(got, newestFirst(all[3:7])) || pages != 2 {
			t.Errorf("runs from the 4th to the 7th: %v in %d pages\nwant %v in 2", got, pages, newestFirst(all[3:7]))
		}
		if got, _ := list(core.RunFilter{Since: made[6]}, 2); !slices.Equal(got, newestFirst(all[6:])) {
			t.Errorf("runs since the 7th: %v\nwant %v", got, newestFirst(all[6:]))
		}
		if got, _ := list(core.RunFilter{Until: made[2], Action: "webhook.send"}, 5); !slices.Equal(got, all[:1]) {
			t.Errorf("webhook runs before the 3rd: %v\nwant %v", got, all[:1])
		}
		if got, _ := list(core.RunFilter{Since: made[5], Until: made[5]}, 5); len(got) != 0 {
			t.Errorf("an empty range listed %v", got)
		}

		_, _, err := s.ListRuns(ctx, w.ID, core.RunFilter{Status: "done"}, core.Page{})
		wantCode(t, err, core.EInvalid)
		_, _, err = s.ListRuns(ctx, w.ID, core.RunFilter{}, core.Page{Cursor: "not a cursor"})
		wantCode(t, err, core.EInvalid)
	})
}

// A workspace never reaches another's runs or keys.
func TestRunsTenantIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		rb := newRun(b.ID, "echo.echo")
		mustStart(t, s, rb, newClaim("k"))

		_, err := s.Run(ctx, a.ID, rb.ID)
		wantCode(t, err, core.ENotFound)
		wantCode(t, s.MarkRunning(ctx, a.ID, rb.ID, rb.Owner, time.Now()), core.ENotFound)
		stolen := *rb
		stolen.WorkspaceID = a.ID
		stolen.Status = core.RunSucceeded
		wantCode(t, s.FinishExecution(ctx, &stolen, "k", 200, []byte("x"), nil), core.ENotFound)
		runs, _, err := s.ListRuns(ctx, a.ID, core.RunFilter{}, core.Page{})
		if err != nil || len(runs) != 0 {
			t.Errorf("ListRuns(a) = %v, %v", runs, err)
		}
		// a's claim of b's key is a claim of its own.
		mustStart(t, s, newRun(a.ID, "echo.echo"), newClaim("k"))
		existing, err := s.StartExecution(ctx, newRun(b.ID, "echo.echo"), newClaim("k"), nil)
		if err != nil || existing == nil || existing.Done || existing.RunID != rb.ID {
			t.Errorf("b's key after a's attempts = %+v, %v", existing, err)
		}
		if got := mustGetRun(t, s, b.ID, rb.ID); got.Status != core.RunQueued {
			t.Errorf("b's run became %s", got.Status)
		}
	})
}

func newToken(workspaceID string, expires time.Time) *core.ConfirmToken {
	return &core.ConfirmToken{
		Hash:         []byte(core.NewID()),
		WorkspaceID:  workspaceID,
		Action:       "webhook.send",
		ConnectionID: core.NewID(),
		RequestHash:  []byte("request"),
		ExpiresAt:    expires,
	}
}

func TestConfirmTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		tok := newToken(a.ID, time.Now().Add(core.ConfirmTokenTTL).In(time.FixedZone("X", 3600)))
		if err := s.SaveConfirmToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		wantCode(t, s.SaveConfirmToken(ctx, tok), core.EConflict)
		wantCode(t, s.SaveConfirmToken(ctx, newToken(core.NewID(), time.Now())), core.ENotFound)
		wantCode(t, s.SaveConfirmToken(ctx, newToken(a.ID, time.Time{})), core.EInvalid)

		// Another workspace cannot use it, and trying does not spend it.
		_, err := s.UseConfirmToken(ctx, bound(tok, b.ID), time.Now())
		wantCode(t, err, core.ENotFound)
		// Nor can another request, and trying does not spend it either.
		other := bound(tok, a.ID)
		other.RequestHash = []byte("another request")
		_, err = s.UseConfirmToken(ctx, other, time.Now())
		wantCode(t, err, core.ENotFound)
		got, err := s.UseConfirmToken(ctx, bound(tok, a.ID), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tok) {
			t.Errorf("UseConfirmToken = %+v\nwant %+v", got, tok)
		}
		_, err = s.UseConfirmToken(ctx, bound(tok, a.ID), time.Now())
		wantCode(t, err, core.ENotFound)

		expired := newToken(a.ID, time.Now().Add(-time.Second))
		if err := s.SaveConfirmToken(ctx, expired); err != nil {
			t.Fatal(err)
		}
		_, err = s.UseConfirmToken(ctx, bound(expired, a.ID), time.Now())
		wantCode(t, err, core.ENotFound)
		_, err = s.UseConfirmToken(ctx, &core.ConfirmToken{Hash: []byte("never saved"), WorkspaceID: a.ID}, time.Now())
		wantCode(t, err, core.ENotFound)
	})
}

// bound is the binding a caller presents for tok, from workspace ws.
func bound(tok *core.ConfirmToken, ws string) *core.ConfirmToken {
	b := *tok
	b.WorkspaceID = ws
	return &b
}

// Of many concurrent uses of one token, exactly one succeeds.
func TestUseConfirmTokenConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		w := mustCreateWorkspace(t, s, "acme")
		tok := newToken(w.ID, time.Now().Add(time.Minute))
		if err := s.SaveConfirmToken(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		var used, refused atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				_, err := s.UseConfirmToken(context.Background(), bound(tok, w.ID), time.Now())
				switch core.ErrorCode(err) {
				case "":
					used.Add(1)
				case core.ENotFound:
					refused.Add(1)
				default:
					t.Errorf("UseConfirmToken: %v", err)
				}
			})
		}
		wg.Wait()
		if used.Load() != 1 || refused.Load() != 9 {
			t.Errorf("%d used, %d refused; want 1 and 9", used.Load(), refused.Load())
		}
	})
}

func TestDeleteExpired(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		now := time.Now()
		old := newClaim("old")
		old.CreatedAt = now.Add(-25 * time.Hour)
		mustStart(t, s, newRun(w.ID, "echo.echo"), old)
		mustStart(t, s, newRun(w.ID, "echo.echo"), newClaim("fresh"))
		for _, tok := range []*core.ConfirmToken{newToken(w.ID, now.Add(-time.Second)), newToken(w.ID, now.Add(time.Minute))} {
			if err := s.SaveConfirmToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteExpired(ctx, now); err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := s.db.SelectContext(ctx, &keys, `SELECT key FROM idempotency_records`); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"fresh"}) {
			t.Errorf("idempotency keys left: %v", keys)
		}
		if n := countRows(t, s, "confirm_tokens"); n != 1 {
			t.Errorf("%d confirm tokens left, want 1", n)
		}
		// Runs are history: they stay.
		if n := countRows(t, s, "runs"); n != 2 {
			t.Errorf("%d runs left, want 2", n)
		}
	})
}
