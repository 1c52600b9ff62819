package audit

import (
	"context"
	"fmt"
	"testing"
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
		b, err := Verify(context.Background(), s, "")
		if err != nil {
			t.Fatal(err)
		}
		if b != nil && b.WorkspaceID != "a" {
			t.Fatalf("Verify blames workspace %s: %v", b.WorkspaceID, b)
		}
		if b2, err := Verify(context.Background(), s, "b"); b2 != nil || err != nil {
			t.Fatalf("Verify(b) = %v, %v", b2, err)
		}
	})
}
