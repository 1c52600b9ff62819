package audit

import (
	"bytes"
	"context"
	"math"
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

// oldLog makes the workspace "a", whose log begins with n records of 400
// days ago.
func oldLog(t *testing.T, st *sqlstore.Store, n int) *core.Workspace {
	t.Helper()
	ws, err := st.CreateWorkspace(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	appendAt(t, st, ws.ID, time.Now().Add(-400*24*time.Hour), n)
	return ws
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
		if _, err := st.PurgeAudit(ctx, a.ID, before, math.MaxInt64, 0, seal); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("a limit of 0: %v", err)
		}
		// Never past seq through (the last record the server verified).
		if n, err := st.PurgeAudit(ctx, a.ID, before, 2, 10, seal); err != nil || n != 2 {
			t.Fatalf("through seq 2: %d, %v", n, err)
		}
		if got := seqs(t, st, a.ID); !strings.HasPrefix(got, "2* 3 4") {
			t.Fatalf("after a purge through seq 2: %s", got)
		}
		for i, want := range []int64{10, 10, 1, 0} {
			n, err := st.PurgeAudit(ctx, a.ID, before, math.MaxInt64, 10, seal)
			if err != nil || n != want {
				t.Fatalf("batch %d: %d, %v; want %d", i, n, err, want)
			}
			if i == 0 {
				if got := seqs(t, st, a.ID); !strings.HasPrefix(got, "12* 13 14") {
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
		_, err = st.PurgeAudit(ctx, a.ID, now.Add(time.Minute), math.MaxInt64, 10, func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
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
		ws := oldLog(t, st, 200)
		before := time.Now().Add(-time.Minute)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			appendN(t, st, ws.ID, 100)
		}()
		var purged int64
		for {
			n, err := st.PurgeAudit(ctx, ws.ID, before, math.MaxInt64, 7, func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
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

// rewrite has an intruder with write access to the database rewrite the
// workspace's records from seq 1 through seq to, each re-hashed so that
// they chain: the log reads whole, and only a record verified before
// (the Checker's) tells.
func rewrite(t *testing.T, st *sqlstore.Store, workspaceID string, to int64) {
	t.Helper()
	var records []*core.AuditRecord
	err := st.ScanAudit(context.Background(), workspaceID, func(r *core.AuditRecord) error {
		if r.Seq <= to {
			records = append(records, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var prev []byte
	for _, r := range records {
		r.Target, r.PrevHash = "rewritten", prev
		r.Hash = r.ChainHash(prev)
		var prevArg any
		if prev != nil {
			prevArg = prev
		}
		exec(t, st, `UPDATE audit_records SET target = ?, prev_hash = ?, hash = ? WHERE workspace_id = ? AND seq = ?`, r.Target, prevArg, r.Hash, workspaceID, r.Seq)
		prev = r.Hash
	}
}

// A purge does not launder a rewrite: the records a checkpoint replaces
// must link to the record after them, and the purge goes no further than
// the Checker verified, so the rewritten hash the checkpoint carries is
// one the Checker knows to be wrong.
func TestPurgeDoesNotLaunderARewrite(t *testing.T) {
	eachStore(t, func(t *testing.T, _ sqlstoretest.Database, _ string, st *sqlstore.Store) {
		ctx := context.Background()
		signer := testSigner(t, 7)
		ws := oldLog(t, st, 30)
		c := NewChecker(st, nil, time.Minute, signer.PublicKey())
		if b := mustCheck(t, c); b != nil {
			t.Fatal(b)
		}
		before := time.Now().Add(-365 * 24 * time.Hour)
		purge := func(through int64) (int64, error) {
			return st.PurgeAudit(ctx, ws.ID, before, through, 100, func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
				return signer.Seal(prefix, before, time.Now())
			})
		}

		// Record 5 edited and re-hashed alone: the prefix through it chains,
		// but record 6 no longer links to it.
		var five core.AuditRecord
		err := st.ScanAudit(ctx, ws.ID, func(r *core.AuditRecord) error {
			if r.Seq == 5 {
				five = *r
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		original := bytes.Clone(five.Hash)
		five.Target = "edited"
		exec(t, st, `UPDATE audit_records SET target = ?, hash = ? WHERE workspace_id = ? AND seq = 5`, five.Target, five.ChainHash(five.PrevHash), ws.ID)
		if _, err := purge(5); err == nil || !strings.Contains(err.Error(), "record seq 6 does not link to seq 5") {
			t.Fatalf("a purge through an edited record: %v", err)
		}
		exec(t, st, `UPDATE audit_records SET target = '', hash = ? WHERE workspace_id = ? AND seq = 5`, original, ws.ID)
		if got := seqs(t, st, ws.ID); !strings.HasPrefix(got, "1 2 3") {
			t.Fatalf("the refused purge deleted records: %s", got)
		}

		// The whole log rewritten, and old-dated records appended after it:
		// the purge stops at the last verified record, whose checkpoint
		// carries a hash the Checker knows is not the one it verified.
		rewrite(t, st, ws.ID, 30)
		appendAt(t, st, ws.ID, time.Now().Add(-400*24*time.Hour+time.Hour), 5)
		through, ok := c.Verified(ws.ID)
		if !ok || through != 30 {
			t.Fatalf("Verified = %d, %v; want 30", through, ok)
		}
		if n, err := purge(through); err != nil || n != 30 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		b := mustCheck(t, c)
		if len(b) != 1 || b[0].Seq != 30 || b[0].Kind != Edited {
			t.Fatalf("the Checker after the laundering purge: %v", b)
		}
		if _, ok := c.Verified(ws.ID); ok {
			t.Error("a broken workspace still counts as verified")
		}
	})
}
