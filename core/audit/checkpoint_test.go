package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

func testSigner(t testing.TB, b byte) *Signer {
	t.Helper()
	s, err := NewSigner(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// purge does in memory what the store's PurgeAudit does: the records of
// ws through seq give way to the checkpoint that signer seals of them.
func (s *memStore) purge(t *testing.T, signer *Signer, ws string, through int64, before time.Time) *core.AuditRecord {
	t.Helper()
	var prefix []*core.AuditRecord
	for _, r := range s.records {
		if r.WorkspaceID == ws && r.Seq <= through {
			cp := *r
			prefix = append(prefix, &cp)
		}
	}
	slices.SortFunc(prefix, func(a, b *core.AuditRecord) int { return int(a.Seq - b.Seq) })
	cp, err := signer.Seal(prefix, before, epoch.Add(time.Hour))
	if err != nil {
		t.Fatalf("Seal through seq %d: %v", through, err)
	}
	s.records = slices.DeleteFunc(s.records, func(r *core.AuditRecord) bool { return r.WorkspaceID == ws && r.Seq <= through })
	s.records = append(s.records, cp)
	return cp
}

// A chain that begins with a checkpoint verifies with the key that signed
// it, purged again and again; the checkpoint says what it replaced.
func TestCheckpointVerifies(t *testing.T) {
	signer := testSigner(t, 1)
	key := signer.PublicKey()
	s := newStore(20, "a", "b")
	before := epoch.Add(time.Minute)
	hash5 := bytes.Clone(s.at("a", 5).Hash)
	cp := s.purge(t, signer, "a", 5, before)
	if cp.Seq != 5 || !bytes.Equal(cp.Hash, hash5) || cp.Action != CheckpointAction || cp.WorkspaceID != "a" {
		t.Fatalf("checkpoint %+v", cp)
	}
	if b, err := Verify(context.Background(), s, "", key); b != nil || err != nil {
		t.Fatalf("after a purge: %v, %v", b, err)
	}
	p, err := CheckCheckpoint(cp, key)
	if err != nil || p.Records != 5 || p.Through != 5 || !p.Oldest.Equal(epoch.Add(time.Second)) || !p.Newest.Equal(epoch.Add(5*time.Second)) || !p.Before.Equal(before) {
		t.Fatalf("CheckCheckpoint = %+v, %v", p, err)
	}
	// Again, from the checkpoint: it counts the records of both purges.
	cp = s.purge(t, signer, "a", 12, before)
	if p, err := CheckCheckpoint(cp, key); err != nil || p.Records != 12 || !p.Oldest.Equal(epoch.Add(time.Second)) || !p.Newest.Equal(epoch.Add(12*time.Second)) {
		t.Fatalf("second checkpoint = %+v, %v", p, err)
	}
	// Down to the newest record, which the next append links to.
	last := s.purge(t, signer, "a", 20, before)
	next := record("a", "a-21", 21)
	next.Seq, next.PrevHash = 21, bytes.Clone(last.Hash)
	rehash(next)
	s.records = append(s.records, next)
	if b, err := Verify(context.Background(), s, "", key); b != nil || err != nil {
		t.Fatalf("purged to the head, then appended: %v, %v", b, err)
	}
	// The checkpoint's own time is when it was made, so a purge with only
	// a checkpoint older than the cut has nothing to do.
	if _, err := signer.Seal([]*core.AuditRecord{s.at("a", 20)}, epoch.Add(48*time.Hour), epoch.Add(49*time.Hour)); err == nil || !strings.Contains(err.Error(), "no records to purge") {
		t.Errorf("a checkpoint alone: %v", err)
	}
}

// A checkpoint that does not hold breaks the chain where it stands, with
// the reason: without the key, with another key, changed, or moved.
func TestCheckpointTampering(t *testing.T) {
	signer := testSigner(t, 1)
	key := signer.PublicKey()
	cases := []struct {
		name   string
		key    ed25519.PublicKey
		tamper func(s *memStore, cp *core.AuditRecord)
		kind   string
		detail string
		seq    int64
	}{
		{name: "no key", key: nil, tamper: func(*memStore, *core.AuditRecord) {}, kind: Edited, detail: "needs the master key", seq: 6},
		{name: "another key", key: testSigner(t, 2).PublicKey(), tamper: func(*memStore, *core.AuditRecord) {}, kind: Edited, detail: "not the server's audit key", seq: 6},
		{name: "forged with another key", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			forged := s.purgeCopy(t, testSigner(t, 3), cp)
			*cp = *forged
		}, kind: Edited, detail: "signed by key", seq: 6},
		{name: "count changed", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			cp.Details = json.RawMessage(strings.Replace(string(cp.Details), `"records":6`, `"records":5`, 1))
		}, kind: Edited, detail: "signature does not hold", seq: 6},
		{name: "time changed", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			cp.Time = cp.Time.Add(time.Second)
		}, kind: Edited, detail: "signature does not hold", seq: 6},
		{name: "hash changed", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			cp.Hash = bytes.Clone(cp.Hash)
			cp.Hash[0] ^= 1
		}, kind: Edited, detail: "signature does not hold", seq: 6},
		{name: "given a link", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			cp.PrevHash = s.at("b", 5).Hash
		}, kind: Edited, detail: "links to a previous record", seq: 6},
		{name: "details not a checkpoint", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			cp.Details = json.RawMessage(`{"n":1}`)
		}, kind: Edited, detail: "not a checkpoint's", seq: 6},
		{name: "records after it deleted", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			s.remove("a", 7, 8)
		}, kind: Deleted, detail: "seqs 7 to 8 are missing", seq: 9},
		{name: "deleted", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			s.remove("a", 6)
		}, kind: Deleted, detail: "seqs 1 to 6 are missing", seq: 7},
		{name: "another workspace's", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			// b's checkpoint, as signed, standing in for a's.
			theirs := newStore(10, "b").purge(t, signer, "b", 6, epoch.Add(time.Minute))
			theirs.WorkspaceID = "a"
			*cp = *theirs
		}, kind: Edited, detail: "signature does not hold", seq: 6},
		{name: "a checkpoint in the middle of a chain", key: key, tamper: func(s *memStore, cp *core.AuditRecord) {
			// A good checkpoint of the same records through seq 8 in
			// place of seq 8: a checkpoint only begins a chain.
			later := newStore(10, "a").purge(t, signer, "a", 8, epoch.Add(time.Minute))
			s.remove("a", 8)
			s.records = append(s.records, later)
		}, kind: Edited, seq: 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(10, "a", "b")
			cp := s.purge(t, signer, "a", 6, epoch.Add(time.Minute))
			tc.tamper(s, cp)
			b, err := Verify(context.Background(), s, "", tc.key)
			if err != nil || b == nil {
				t.Fatalf("Verify = %v, %v; want a break", b, err)
			}
			if b.WorkspaceID != "a" || b.Kind != tc.kind || b.Seq != tc.seq || !strings.Contains(b.Detail, tc.detail) {
				t.Errorf("break %v; want %s at seq %d, saying %q", b, tc.kind, tc.seq, tc.detail)
			}
		})
	}
}

// purgeCopy is cp sealed again by another signer, over the records cp
// replaced (rebuilt from a fresh store).
func (s *memStore) purgeCopy(t *testing.T, other *Signer, cp *core.AuditRecord) *core.AuditRecord {
	t.Helper()
	fresh := newStore(10, cp.WorkspaceID)
	return fresh.purge(t, other, cp.WorkspaceID, cp.Seq, epoch.Add(time.Minute))
}

// Seal refuses a prefix that is not a whole chain from its start, or
// that holds a record not older than the cut.
func TestSealRefuses(t *testing.T) {
	signer := testSigner(t, 1)
	s := newStore(6, "a")
	chain := func() []*core.AuditRecord {
		var out []*core.AuditRecord
		for seq := int64(1); seq <= 6; seq++ {
			cp := *s.at("a", seq)
			out = append(out, &cp)
		}
		return out
	}
	before := epoch.Add(time.Minute)
	for name, prefix := range map[string][]*core.AuditRecord{
		"empty":          nil,
		"a gap":          slices.Delete(chain(), 2, 3),
		"not from seq 1": chain()[1:],
		"edited": func() []*core.AuditRecord {
			c := chain()
			c[3].Target = "changed"
			return c
		}(),
	} {
		if _, err := signer.Seal(prefix, before, before); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if _, err := signer.Seal(chain(), epoch.Add(3*time.Second), before); err == nil || !strings.Contains(err.Error(), "not older") {
		t.Errorf("records past the cut: %v", err)
	}
	// A checkpoint that another key signed does not begin a prefix.
	other := newStore(6, "a")
	cp := other.purge(t, testSigner(t, 2), "a", 3, before)
	if _, err := signer.Seal([]*core.AuditRecord{cp, other.at("a", 4)}, before, before); err == nil || !strings.Contains(err.Error(), "the checkpoint at seq 3") {
		t.Errorf("a checkpoint of another key: %v", err)
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("a short seed made a signer")
	}
}

// The details around the signed checkpoint are part of what must not
// change, even where JSON would read them alike.
func TestCheckpointDetailsExact(t *testing.T) {
	s := newStore(3, "a")
	cp := s.purge(t, testSigner(t, 1), "a", 2, epoch.Add(time.Minute))
	if _, err := CheckCheckpoint(cp, testSigner(t, 1).PublicKey()); err != nil {
		t.Fatal(err)
	}
	spaced := *cp
	spaced.Details = json.RawMessage(strings.Replace(string(cp.Details), `,"key_id"`, `, "key_id"`, 1))
	if _, err := CheckCheckpoint(&spaced, testSigner(t, 1).PublicKey()); err == nil || !strings.Contains(err.Error(), "not as they were written") {
		t.Errorf("details with a space added: %v", err)
	}
}
