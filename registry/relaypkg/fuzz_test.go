package relaypkg

import (
	"bytes"
	"testing"
)

// FuzzInspect feeds the package reader arbitrary bytes: it must never
// panic or hang, and what it accepts must be a package its index
// describes.
func FuzzInspect(f *testing.F) {
	valid, _ := mustPack(f, testFiles())
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(rawArchive(f, members(f, testFiles())[1:], nil))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{Compressed: 1 << 20, Unpacked: 4 << 20, Member: 2 << 20}
		p, err := Inspect(bytes.NewReader(data), lim)
		if err != nil {
			return
		}
		again, err := parseIndex(p.IndexBytes)
		if err != nil || again.String() != p.Index.String() || p.Manifest == nil {
			t.Fatalf("accepted a package whose index does not read again: %v", err)
		}
		var total int64
		for _, file := range p.Index.Files {
			total += file.Size
		}
		if total > lim.Unpacked {
			t.Fatalf("accepted %d bytes of members, over the limit", total)
		}
	})
}
