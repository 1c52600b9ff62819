package audit

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// appendAt appends n records to the workspace, dated from at on, a
// second apart.
func appendAt(t *testing.T, st *sqlstore.Store, workspaceID string, at time.Time, n int) {
	t.Helper()
	for i := range n {
		r := &core.AuditRecord{WorkspaceID: workspaceID, Action: "test.append", Outcome: "success", Time: at.Add(time.Duration(i) * time.Second)}
		if err := st.AppendAudit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// seqs lists the workspace's records as "seq" or, for a checkpoint,
// "seq*".
func seqs(t *testing.T, st *sqlstore.Store, workspaceID string) string {
	t.Helper()
	var out []string
	err := st.ScanAudit(context.Background(), workspaceID, func(r *core.AuditRecord) error {
		s := strconv.FormatInt(r.Seq, 10)
		if r.Action == CheckpointAction {
			s += "*"
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// The store's purge replaces a workspace's oldest records, a batch at a
// time, with a checkpoint that Verify and checkers at any point of the
// chain accept; the newest records, other workspaces and later appends
// are untouched; a checkpoint that no longer holds stops the next purge
// and is reported.
func TestPurgeAudit(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		signer := testSigner(t, 7)
		key := signer.PublicKey()
		a, err := st.CreateWorkspace(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.CreateWorkspace(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		old := now.Add(-400 * 24 * time.Hour)
		appendAt(t, st, a.ID, old, 3)
		early := NewChecker(st, nil, time.Minute, key) // will have verified seq 3 only
		if b := mustCheck(t, early); b != nil {
			t.Fatal(b)
		}
		appendAt(t, st, a.ID, old.Add(time.Hour), 20)
		appendAt(t, st, b.ID, old, 5)
		appendAt(t, st, a.ID, now.Add(-time.Hour), 4)
		late := NewChecker(st, nil, time.Minute, key) // will have verified all 27
		if b := mustCheck(t, late); b != nil {
			t.Fatal(b)
		}

		before := now.Add(-365 * 24 * time.Hour)
		seal := func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
			return signer.Seal(prefix, before, time.Now())
		}
		if _, err := st.PurgeAudit(ctx, a.ID, before, 0, seal); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("a limit of 0: %v", err)
		}
		for i, want := range []int64{10, 10, 3, 0} {
			n, err := st.PurgeAudit(ctx, a.ID, before, 10, seal)
			if err != nil || n != want {
				t.Fatalf("batch %d: %d, %v; want %d", i, n, err, want)
			}
			if i == 0 {
				if got := seqs(t, st, a.ID); !strings.HasPrefix(got, "10* 11 12") {
					t.Fatalf("after the first batch: %s", got)
				}
				if b := mustCheck(t, late); b != nil {
					t.Fatalf("a checker past the purge: %v", b)
				}
			}
		}
		if got, want := seqs(t, st, a.ID), "23* 24 25 26 27"; got != want {
			t.Fatalf("workspace a: %s, want %s", got, want)
		}
		if got, want := seqs(t, st, b.ID), "1 2 3 4 5"; got != want {
			t.Fatalf("workspace b: %s, want %s", got, want)
		}
		appendAt(t, st, a.ID, now, 1)
		if brk, err := Verify(ctx, st, "", key); brk != nil || err != nil {
			t.Fatalf("Verify after the purge: %v, %v", brk, err)
		}
		if brk, err := Verify(ctx, st, a.ID, nil); err != nil || brk == nil || brk.Seq != 23 || !strings.Contains(brk.Detail, "master key") {
			t.Fatalf("Verify without the key: %v, %v", brk, err)
		}
		for name, c := range map[string]*Checker{"behind the purge": early, "at the purge": late, "new": NewChecker(st, nil, time.Minute, key)} {
			if b := mustCheck(t, c); b != nil {
				t.Errorf("a checker %s: %v", name, b)
			}
		}
		if got := late.Stats(); got.Failures != 0 {
			t.Errorf("late checker: %+v", got)
		}

		// An intruder lowers the count the checkpoint gives.
		exec(t, st, `UPDATE audit_records SET details = REPLACE(details, '"records":23', '"records":22') WHERE workspace_id = ? AND seq = 23`, a.ID)
		brk, err := Verify(ctx, st, "", key)
		if err != nil || brk == nil || brk.WorkspaceID != a.ID || brk.Seq != 23 || brk.Kind != Edited || !strings.Contains(brk.Detail, "signature does not hold") {
			t.Fatalf("Verify after the edit: %v, %v", brk, err)
		}
		if b := mustCheck(t, NewChecker(st, nil, time.Minute, key)); len(b) != 1 || b[0].Seq != 23 {
			t.Errorf("a new checker after the edit: %v", b)
		}
		_, err = st.PurgeAudit(ctx, a.ID, now.Add(time.Minute), 10, func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
			return signer.Seal(prefix, now.Add(time.Minute), time.Now())
		})
		if err == nil || !strings.Contains(err.Error(), "checkpoint at seq 23") {
			t.Fatalf("a purge of a broken chain: %v", err)
		}
		if got, want := seqs(t, st, a.ID), "23* 24 25 26 27 28"; got != want {
			t.Fatalf("the refused purge deleted records: %s, want %s", got, want)
		}
	})
}

// Purges and appends at once leave a whole chain: the purge holds the
// workspace's chain as appends do.
func TestPurgeAuditBesideAppends(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		signer := testSigner(t, 7)
		ws, err := st.CreateWorkspace(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-400 * 24 * time.Hour)
		appendAt(t, st, ws.ID, old, 200)
		before := time.Now().Add(-time.Minute)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			appendN(t, st, ws.ID, 100)
		}()
		var purged int64
		for {
			n, err := st.PurgeAudit(ctx, ws.ID, before, 7, func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
				return signer.Seal(prefix, before, time.Now())
			})
			if err != nil {
				t.Fatal(err)
			}
			purged += n
			if n < 7 {
				break
			}
		}
		wg.Wait()
		if purged != 200 {
			t.Errorf("purged %d, want the 200 old records", purged)
		}
		if brk, err := Verify(ctx, st, "", signer.PublicKey()); brk != nil || err != nil {
			t.Fatalf("Verify: %v, %v", brk, err)
		}
		if got := seqs(t, st, ws.ID); !strings.HasPrefix(got, "200* 201 ") || !strings.HasSuffix(got, " 300") {
			t.Fatalf("records %s", got)
		}
	})
}
