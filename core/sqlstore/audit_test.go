package sqlstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

func newAudit(workspaceID, action string) *core.AuditRecord {
	return &core.AuditRecord{
		WorkspaceID: workspaceID,
		KeyID:       core.NewID(),
		Role:        "admin",
		IP:          "192.0.2.7",
		RequestID:   "req-1",
		Action:      action,
		Target:      "connection/x",
		Outcome:     "success",
		// Odd spacing and key order: it must come back byte for byte.
		Details: json.RawMessage(`{"z": 1,  "a": "é", "password": "[REDACTED]"}`),
	}
}

func mustAppendAudit(t testing.TB, s *Store, r *core.AuditRecord) {
	t.Helper()
	if err := s.AppendAudit(context.Background(), r); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
}

// verifyChain checks that records are seq 1..len with each hash over its
// record and its predecessor's hash, as `relay audit verify` does.
func verifyChain(t *testing.T, records []*core.AuditRecord) {
	t.Helper()
	var prev []byte
	for i, r := range records {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if !bytes.Equal(r.PrevHash, prev) {
			t.Fatalf("record %d: prev_hash %x, want %x", r.Seq, r.PrevHash, prev)
		}
		if h := r.ChainHash(prev); !bytes.Equal(h, r.Hash) {
			t.Fatalf("record %d: hash %x, recomputed %x", r.Seq, r.Hash, h)
		}
		prev = r.Hash
	}
}

func scanAll(t *testing.T, s *Store, workspaceID string) []*core.AuditRecord {
	t.Helper()
	var records []*core.AuditRecord
	err := s.ScanAudit(context.Background(), workspaceID, func(r *core.AuditRecord) error {
		records = append(records, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanAudit: %v", err)
	}
	return records
}

func TestAppendAuditRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		w := mustCreateWorkspace(t, s, "acme")
		first := newAudit(w.ID, "key.create")
		first.Time = time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.FixedZone("UTC-3", -3*3600))
		mustAppendAudit(t, s, first)
		if first.Seq != 1 || first.PrevHash != nil || !core.ValidID(first.ID) {
			t.Fatalf("first record: seq %d, prev %x, id %q", first.Seq, first.PrevHash, first.ID)
		}
		if want := time.Date(2030, 1, 2, 6, 4, 5, 678901000, time.UTC); first.Time != want {
			t.Errorf("Time left %v, want %v", first.Time, want)
		}
		second := newAudit(w.ID, "action.execute")
		second.Details = nil
		second.KeyID, second.Role, second.IP, second.Target = "", "", "", ""
		mustAppendAudit(t, s, second)
		if second.Seq != 2 || !bytes.Equal(second.PrevHash, first.Hash) || second.Time.IsZero() {
			t.Fatalf("second record: %+v", second)
		}

		got := scanAll(t, s, w.ID)
		if !reflect.DeepEqual(got, []*core.AuditRecord{first, second}) {
			t.Errorf("ScanAudit = %+v\nwant %+v", got, []*core.AuditRecord{first, second})
		}
		verifyChain(t, got)
	})
}

func TestAppendAuditRefuses(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		wantCode(t, s.AppendAudit(ctx, nil), core.EInvalid)
		wantCode(t, s.AppendAudit(ctx, newAudit("", "x")), core.EInvalid)
		wantCode(t, s.AppendAudit(ctx, newAudit(w.ID, "")), core.EInvalid)
		bad := newAudit(w.ID, "x")
		bad.Details = json.RawMessage(`{`)
		wantCode(t, s.AppendAudit(ctx, bad), core.EInvalid)
		wantCode(t, s.AppendAudit(ctx, newAudit(core.NewID(), "x")), core.ENotFound)
		dup := newAudit(w.ID, "x")
		mustAppendAudit(t, s, dup)
		again := newAudit(w.ID, "x")
		again.ID = dup.ID
		wantCode(t, s.AppendAudit(ctx, again), core.EConflict)
		if got := scanAll(t, s, w.ID); len(got) != 1 {
			t.Errorf("%d records after refused appends, want 1", len(got))
		}
	})
}

// Concurrent appends to one workspace take turns: seq 1..n, one chain.
func TestAppendAuditConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		// A hundred connections would be PostgreSQL's whole default
		// max_connections; thirty transactions at once contend enough.
		s.db.SetMaxOpenConns(30)
		const n = 50
		var wg sync.WaitGroup
		for range n {
			for _, w := range []string{a.ID, b.ID} {
				wg.Go(func() {
					if err := s.AppendAudit(context.Background(), newAudit(w, "action.execute")); err != nil {
						t.Errorf("AppendAudit: %v", err)
					}
				})
			}
		}
		wg.Wait()
		for _, w := range []string{a.ID, b.ID} {
			got := scanAll(t, s, w)
			if len(got) != n {
				t.Fatalf("workspace %s has %d records, want %d", w, len(got), n)
			}
			verifyChain(t, got)
		}
	})
}

// Stores on one database (replicas of the server) appending to one
// workspace at once still make one chain: each group reads the chain's
// last record only once it holds the chain.
func TestAppendAuditConcurrentStores(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		stores := []*Store{openStore(t, databaseURL), openStore(t, databaseURL), openStore(t, databaseURL)}
		if _, err := stores[0].Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		ws := mustCreateWorkspace(t, stores[0], "acme")
		const n = 40
		var wg sync.WaitGroup
		for _, s := range stores {
			for range n {
				wg.Go(func() {
					if err := s.AppendAudit(context.Background(), newAudit(ws.ID, "action.execute")); err != nil {
						t.Errorf("AppendAudit: %v", err)
					}
				})
			}
		}
		wg.Wait()
		got := scanAll(t, stores[0], ws.ID)
		if len(got) != n*len(stores) {
			t.Fatalf("%d records, want %d", len(got), n*len(stores))
		}
		verifyChain(t, got)
	})
}

// Each workspace has a chain of its own; scanning all goes workspace by
// workspace.
func TestAuditChainsPerWorkspace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		for range 3 {
			mustAppendAudit(t, s, newAudit(a.ID, "x"))
			mustAppendAudit(t, s, newAudit(b.ID, "y"))
		}
		verifyChain(t, scanAll(t, s, a.ID))
		verifyChain(t, scanAll(t, s, b.ID))

		all := scanAll(t, s, "")
		if len(all) != 6 {
			t.Fatalf("ScanAudit(all) = %d records, want 6", len(all))
		}
		first, second := all[:3], all[3:]
		if first[0].WorkspaceID > second[0].WorkspaceID {
			first, second = second, first
		}
		for _, chain := range [][]*core.AuditRecord{first, second} {
			for _, r := range chain {
				if r.WorkspaceID != chain[0].WorkspaceID {
					t.Fatalf("ScanAudit(all) mixes workspaces: %+v", all)
				}
			}
			verifyChain(t, chain)
		}

		// fn's error stops the scan and comes back as it is.
		stop := errors.New("stop")
		calls := 0
		err := s.ScanAudit(context.Background(), "", func(*core.AuditRecord) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("ScanAudit with a failing fn = %v after %d calls", err, calls)
		}

		// Another workspace's records are not listed.
		records, _, err := s.ListAudit(context.Background(), a.ID, core.Page{})
		if err != nil || len(records) != 3 {
			t.Fatalf("ListAudit(a) = %d, %v", len(records), err)
		}
		for _, r := range records {
			if r.WorkspaceID != a.ID {
				t.Errorf("ListAudit(a) lists %+v", r)
			}
		}
	})
}

func TestListAuditPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		for range 5 {
			mustAppendAudit(t, s, newAudit(w.ID, "x"))
		}
		var seqs []int64
		cursor := ""
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatal("pagination does not end")
			}
			records, next, err := s.ListAudit(ctx, w.ID, core.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range records {
				seqs = append(seqs, r.Seq)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if !reflect.DeepEqual(seqs, []int64{1, 2, 3, 4, 5}) {
			t.Errorf("listed seqs %v", seqs)
		}
		for _, cursor := range []string{"!!", encodeCursor("x"), cursorEncoding.EncodeToString([]byte("0")),
			cursorEncoding.EncodeToString([]byte("-1")), cursorEncoding.EncodeToString([]byte("01")), encodeCursor(core.NewID())} {
			_, _, err := s.ListAudit(ctx, w.ID, core.Page{Cursor: cursor})
			if core.ErrorCode(err) != core.EInvalid {
				t.Errorf("cursor %q: %v, want %s", cursor, err, core.EInvalid)
			}
		}
	})
}
