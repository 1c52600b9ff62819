package audit

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// FuzzVerify tampers with workspace a's chain as the input says (edits,
// re-hashes, deletions, swaps, forged records, renumbering) and checks that
// Verify neither panics nor fails and never blames workspace b.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 3})
	f.Add([]byte{1, 4, 2, 2, 3, 5})
	f.Add([]byte{4, 1, 5, 6, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const records = 8
		s := newStore(records, "a", "b")
		for i := 0; i+1 < len(ops) && i < 16; i += 2 {
			a := s.records[:0:0]
			for _, r := range s.records {
				if r.WorkspaceID == "a" {
					a = append(a, r)
				}
			}
			if len(a) == 0 {
				break
			}
			r := a[int(ops[i+1])%len(a)]
			switch ops[i] % 6 {
			case 0:
				r.Outcome += "!"
			case 1:
				r.Outcome += "!"
				rehash(r)
			case 2:
				s.remove("a", r.Seq)
			case 3:
				o := a[int(ops[i+1]/8)%len(a)]
				r.Seq, o.Seq = o.Seq, r.Seq
			case 4:
				s.records = append(s.records, forge("a", fmt.Sprint("forged-", i), r.Seq, r.PrevHash))
			case 5:
				r.Seq += int64(ops[i+1]%5) - 2
			}
		}
		b, err := Verify(context.Background(), s, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if b != nil && b.WorkspaceID != "a" {
			t.Fatalf("Verify blames workspace %s: %v", b.WorkspaceID, b)
		}
		if b2, err := Verify(context.Background(), s, "b", nil); b2 != nil || err != nil {
			t.Fatalf("Verify(b) = %v, %v", b2, err)
		}
	})
}

// FuzzCheckCheckpoint gives CheckCheckpoint a good checkpoint with its
// details, seq, time or hash replaced by the input's, and checks that it
// never panics and accepts only the checkpoint as signed.
func FuzzCheckCheckpoint(f *testing.F) {
	signer := testSigner(f, 1)
	s := newStore(6, "a")
	var prefix []*core.AuditRecord
	for seq := int64(1); seq <= 4; seq++ {
		prefix = append(prefix, s.at("a", seq))
	}
	good, err := signer.Seal(prefix, epoch.Add(time.Hour), epoch.Add(2*time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), []byte(good.Details))
	f.Add(uint8(0), []byte(`{"checkpoint":{"records":4,"through_seq":4},"key_id":"","signature":""}`))
	f.Add(uint8(0), []byte(`{"checkpoint":null}`))
	f.Add(uint8(1), []byte{4})
	f.Add(uint8(2), []byte("x"))
	f.Add(uint8(3), bytes.Repeat([]byte{0}, 32))
	f.Fuzz(func(t *testing.T, field uint8, data []byte) {
		r := *good
		switch field % 4 {
		case 0:
			r.Details = data
		case 1:
			if len(data) > 0 {
				r.Seq = int64(data[0])
			}
		case 2:
			r.Time = r.Time.Add(time.Duration(len(data)) * time.Nanosecond * 1000)
		case 3:
			r.Hash = data
		}
		p, err := CheckCheckpoint(&r, signer.PublicKey())
		same := bytes.Equal(r.Details, good.Details) && r.Seq == good.Seq && r.Time.Equal(good.Time) && bytes.Equal(r.Hash, good.Hash)
		if err == nil && !same {
			t.Fatalf("a changed checkpoint holds: %+v", r)
		}
		if same && (err != nil || p.Through != 4 || p.Records != 4) {
			t.Fatalf("the checkpoint as signed: %+v, %v", p, err)
		}
	})
}
