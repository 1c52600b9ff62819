package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

const n = 10 // records per workspace in the tampering tests

func TestVerifyWholeChains(t *testing.T) {
	ctx := context.Background()
	for _, s := range []*memStore{{}, newStore(1, "a"), newStore(n, "a", "b", "c")} {
		for _, ws := range []string{"", "a", "b", "nope"} {
			if b, err := Verify(ctx, s, ws, nil); b != nil || err != nil {
				t.Errorf("Verify(%q) of %d records = %v, %v; want nil, nil", ws, len(s.records), b, err)
			}
		}
	}
	// A chain longer than the window of recent records.
	if b, err := Verify(ctx, newStore(3*window+5, "a"), "a", nil); b != nil || err != nil {
		t.Errorf("Verify = %v, %v; want nil, nil", b, err)
	}
}

func TestVerifyTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(s *memStore)
		// want names the break in workspace a: kind, seq, id and a piece
		// of the detail.
		kind   string
		seq    int64
		id     string
		detail string
		// seqHashed marks the cases that need ChainHash to cover Seq.
		seqHashed bool
	}{
		{
			name:   "edited field",
			tamper: func(s *memStore) { s.at("a", 5).Outcome = "failure" },
			kind:   Edited, seq: 5, id: "a-5", detail: "does not match its hash",
		},
		{
			name:   "edited details of the first record",
			tamper: func(s *memStore) { s.at("a", 1).Details = []byte(`{"n":0}`) },
			kind:   Edited, seq: 1, id: "a-1",
		},
		{
			name:   "edited last record",
			tamper: func(s *memStore) { s.at("a", n).Target = "other" },
			kind:   Edited, seq: n, id: "a-10",
		},
		{
			name:   "edited time",
			tamper: func(s *memStore) { r := s.at("a", 5); r.Time = r.Time.Add(-time.Nanosecond) },
			kind:   Edited, seq: 5, id: "a-5",
		},
		{
			name:   "edited hash",
			tamper: func(s *memStore) { s.at("a", 5).Hash[0] ^= 1 },
			kind:   Edited, seq: 5, id: "a-5",
		},
		{
			name:   "edited prev hash",
			tamper: func(s *memStore) { s.at("a", 5).PrevHash[0] ^= 1 },
			kind:   Edited, seq: 5, id: "a-5",
		},
		{
			name: "edited and re-hashed",
			tamper: func(s *memStore) {
				r := s.at("a", 5)
				r.Outcome = "failure"
				rehash(r)
			},
			kind: Edited, seq: 5, id: "a-5", detail: "seq 6 (id a-6) links to a hash that no record has",
		},
		{
			name: "link removed and re-hashed",
			tamper: func(s *memStore) {
				r := s.at("a", 5)
				r.PrevHash = nil
				rehash(r)
			},
			kind: Edited, seq: 5, id: "a-5", detail: "its link is not a hash",
		},
		{
			name: "first record edited and re-hashed",
			tamper: func(s *memStore) {
				r := s.at("a", 1)
				r.IP = "203.0.113.9"
				rehash(r)
			},
			kind: Edited, seq: 1, id: "a-1",
		},
		{
			name:   "deleted",
			tamper: func(s *memStore) { s.remove("a", 5) },
			kind:   Deleted, seq: 6, id: "a-6", detail: "seq 5 is missing",
		},
		{
			name:   "deleted first",
			tamper: func(s *memStore) { s.remove("a", 1) },
			kind:   Deleted, seq: 2, id: "a-2", detail: "seq 1 is missing",
		},
		{
			name:   "deleted a run",
			tamper: func(s *memStore) { s.remove("a", 4, 5, 6) },
			kind:   Deleted, seq: 7, id: "a-7", detail: "seqs 4 to 6 are missing",
		},
		{
			name: "deleted and later ones renumbered",
			tamper: func(s *memStore) {
				s.remove("a", 5)
				s.renumber("a", 6, -1)
			},
			kind: Deleted, seq: 5, id: "a-6", detail: "hashed as seq 6", seqHashed: true,
		},
		{
			name: "deleted two and later ones renumbered",
			tamper: func(s *memStore) {
				s.remove("a", 1, 2)
				s.renumber("a", 3, -2)
			},
			kind: Deleted, seq: 1, id: "a-3", detail: "before it were deleted",
		},
		{
			name: "deleted and the next re-linked across the gap",
			tamper: func(s *memStore) {
				prev := s.at("a", 4).Hash
				s.remove("a", 5)
				r := s.at("a", 6)
				r.PrevHash = prev
				rehash(r)
			},
			kind: Deleted, seq: 6, id: "a-6", detail: "re-hashed to link across the gap",
		},
		{
			name: "inserted before a record, repeating its seq",
			tamper: func(s *memStore) {
				x := forge("a", "forged", 5, s.at("a", 4).Hash)
				i := slices.Index(s.records, s.at("a", 5))
				s.records = slices.Insert(s.records, i, x)
			},
			kind: Inserted, seq: 5, id: "forged", detail: "seq 5 (id a-5) links past it to seq 4",
		},
		{
			name: "inserted after a record, repeating its seq",
			tamper: func(s *memStore) {
				s.records = append(s.records, forge("a", "forged", 5, s.at("a", 4).Hash))
			},
			kind: Inserted, seq: 5, id: "forged", detail: "the chain goes on from the other",
		},
		{
			name: "inserted and later ones renumbered",
			tamper: func(s *memStore) {
				prev := s.at("a", 4).Hash
				s.renumber("a", 5, 1)
				s.records = append(s.records, forge("a", "forged", 5, prev))
			},
			kind: Inserted, seq: 5, id: "forged", detail: "not in the chain",
		},
		{
			name: "two inserted and later ones renumbered",
			tamper: func(s *memStore) {
				prev := s.at("a", 4).Hash
				s.renumber("a", 5, 2)
				x := forge("a", "forged-1", 5, prev)
				s.records = append(s.records, x, forge("a", "forged-2", 6, x.Hash))
			},
			kind: Inserted, seq: 5, id: "forged-1", detail: "2 records from seq 5 to seq 6",
		},
		{
			name: "inserted with a made-up link",
			tamper: func(s *memStore) {
				x := forge("a", "forged", 5, []byte("not a hash of anything"))
				i := slices.Index(s.records, s.at("a", 5))
				s.records = slices.Insert(s.records, i, x)
			},
			kind: Inserted, seq: 5, id: "forged", detail: "chain goes on from seq 4",
		},
		{
			name: "inserted at the end, repeating the last seq",
			tamper: func(s *memStore) {
				s.records = append(s.records, forge("a", "forged", n, s.at("a", n-1).Hash))
			},
			kind: Inserted, seq: n, id: "forged", detail: "either may be the inserted one",
		},
		{
			name:   "swapped seqs",
			tamper: func(s *memStore) { swap(s, "a", 5, 6) },
			kind:   Reordered, seq: 5, id: "a-6", detail: "links to seq 6 (id a-5), which comes after it",
		},
		{
			name:   "swapped first two",
			tamper: func(s *memStore) { swap(s, "a", 1, 2) },
			kind:   Reordered, seq: 1, id: "a-2",
		},
		{
			name:   "swapped last two",
			tamper: func(s *memStore) { swap(s, "a", n-1, n) },
			kind:   Reordered, seq: n - 1, id: "a-10",
		},
		{
			name:   "swapped far apart",
			tamper: func(s *memStore) { swap(s, "a", 2, 8) },
			kind:   Reordered, seq: 2, id: "a-8", detail: "links to seq 7",
		},
		{
			name: "two breaks: the first is named",
			tamper: func(s *memStore) {
				s.at("a", 7).Outcome = "failure"
				s.remove("a", 3)
			},
			kind: Deleted, seq: 4, id: "a-4",
		},
	}
	// The same breaks must be found whether Verify reads one workspace, all
	// of them one after the other, or all of them interleaved.
	scans := []struct {
		name      string
		workspace string
		order     func(a, b *core.AuditRecord) int
	}{
		{"one workspace", "a", nil},
		{"every workspace", "", nil},
		{"every workspace interleaved", "", func(a, b *core.AuditRecord) int {
			return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(b.WorkspaceID, a.WorkspaceID))
		}},
	}
	for _, tt := range tests {
		for _, scan := range scans {
			t.Run(tt.name+"/"+scan.name, func(t *testing.T) {
				s := newStore(n, "a", "b", "c")
				tt.tamper(s)
				s.order = scan.order
				got, err := Verify(context.Background(), s, scan.workspace, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil {
					t.Fatal("Verify found no break")
				}
				if got.WorkspaceID != "a" || got.Kind != tt.kind || got.Seq != tt.seq || got.ID != tt.id ||
					!strings.Contains(got.Detail, tt.detail) {
					t.Errorf("Verify = %v\nwant workspace a: record %d (id %s) %s: …%s…", got, tt.seq, tt.id, tt.kind, tt.detail)
				}
				// The other workspaces are untouched and still verify,
				// except b when a record moved into it.
				if b, err := Verify(context.Background(), s, "c", nil); b != nil || err != nil {
					t.Errorf("Verify(c) = %v, %v; want nil, nil", b, err)
				}
			})
		}
	}
}

func swap(s *memStore, ws string, a, b int64) {
	ra, rb := s.at(ws, a), s.at(ws, b)
	ra.Seq, rb.Seq = b, a
}

// A record moved to another workspace leaves a gap in its own chain and
// does not fit the other one, whose hash covers the workspace.
func TestVerifyMovedRecord(t *testing.T) {
	s := newStore(n, "a", "b")
	r := s.at("a", 5)
	r.WorkspaceID, r.Seq = "b", n+1
	for ws, want := range map[string]Break{
		"a": {WorkspaceID: "a", Seq: 6, ID: "a-6", Kind: Deleted},
		"b": {WorkspaceID: "b", Seq: n + 1, ID: "a-5", Kind: Edited},
	} {
		got, err := Verify(context.Background(), s, ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || got.WorkspaceID != want.WorkspaceID || got.Kind != want.Kind || got.Seq != want.Seq || got.ID != want.ID {
			t.Errorf("Verify(%s) = %v, want record %d (id %s) %s", ws, got, want.Seq, want.ID, want.Kind)
		}
	}
}

// seqHashed reports whether core's ChainHash covers a record's Seq.
func seqHashed() bool {
	a, b := record("a", "x", 1), record("a", "x", 1)
	a.Seq, b.Seq = 1, 2
	return !bytes.Equal(a.ChainHash(nil), b.ChainHash(nil))
}

func TestChainHashCoversSeq(t *testing.T) {
	if !seqHashed() {
		t.Fatal("core.AuditRecord.ChainHash does not cover Seq: a record renumbered after a deletion could not be told from a re-hashed predecessor")
	}
}

// What a hash chain cannot see: the newest records removed, the last one
// rewritten, or well-formed records appended. An anchor kept outside the
// database (the last seq and hash per workspace) would catch these.
func TestVerifyUndetectable(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(s *memStore)
	}{
		{"tail truncated", func(s *memStore) { s.remove("a", n-1, n) }},
		{"last record edited and re-hashed", func(s *memStore) {
			r := s.at("a", n)
			r.Outcome = "failure"
			rehash(r)
		}},
		{"forged record appended", func(s *memStore) {
			s.records = append(s.records, forge("a", "forged", n+1, s.at("a", n).Hash))
		}},
		{"whole log removed", func(s *memStore) { s.remove("a", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(n, "a")
			tt.tamper(s)
			if b, err := Verify(context.Background(), s, "", nil); b != nil || err != nil {
				t.Errorf("Verify = %v, %v; the chain alone cannot see this", b, err)
			}
		})
	}
}

// A store that yields records out of seq order shows them as reordered.
func TestVerifyScanOutOfOrder(t *testing.T) {
	tests := []struct {
		name    string
		order   []int64 // seqs of workspace a, in the order the store yields them
		seq     int64
		id      string
		wantErr bool
	}{
		{"two swapped", []int64{1, 2, 3, 5, 4, 6}, 5, "a-5", false},
		{"first moved last", []int64{2, 3, 4, 5, 6, 1}, 2, "a-2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newStore(6, "a")
			s := &memStore{keepRaw: true}
			for _, seq := range tt.order {
				s.records = append(s.records, src.at("a", seq))
			}
			got, err := Verify(context.Background(), s, "a", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || got.Kind != Reordered || got.Seq != tt.seq || got.ID != tt.id {
				t.Errorf("Verify = %v, want record %d (id %s) reordered", got, tt.seq, tt.id)
			}
		})
	}
}

// A seq that goes back in the scan is reordered at once, without reading on.
func TestVerifySeqGoesBack(t *testing.T) {
	src := newStore(4, "a")
	s := &memStore{keepRaw: true}
	x := forge("a", "forged", 2, src.at("a", 1).Hash)
	s.records = append(s.records, src.at("a", 1), src.at("a", 2), src.at("a", 3), x, src.at("a", 4))
	got, err := Verify(context.Background(), s, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Kind != Reordered || got.Seq != 2 || got.ID != "forged" {
		t.Errorf("Verify = %v, want record 2 (id forged) reordered", got)
	}
}

func TestVerifyErrors(t *testing.T) {
	boom := errors.New("boom")
	s := newStore(3, "a")
	s.scanErr = boom
	if _, err := Verify(context.Background(), s, "", nil); !errors.Is(err, boom) {
		t.Errorf("Verify with a failing store: err = %v, want %v", err, boom)
	}
	// A store error after the break is an error too: the break may be
	// misclassified without the rest of the scan.
	s.at("a", 2).Outcome = "x"
	if b, err := Verify(context.Background(), s, "", nil); !errors.Is(err, boom) || b != nil {
		t.Errorf("Verify = %v, %v; want nil, %v", b, err, boom)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, newStore(3, "a"), "", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a canceled context: err = %v", err)
	}
	// Verify checks ctx itself too, for stores that do not.
	if _, err := Verify(ctx, ignoresContext{newStore(5000, "a")}, "", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a canceled context: err = %v", err)
	}
}

type ignoresContext struct{ *memStore }

func (s ignoresContext) ScanAudit(_ context.Context, ws string, fn func(*core.AuditRecord) error) error {
	return s.memStore.ScanAudit(context.Background(), ws, fn)
}

func TestBreakString(t *testing.T) {
	b := &Break{WorkspaceID: "ws_1", Seq: 6, ID: "aud_6", Kind: Deleted, Detail: "seq 5 is missing"}
	if got, want := b.String(), "workspace ws_1: record 6 (id aud_6) deleted: seq 5 is missing"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
