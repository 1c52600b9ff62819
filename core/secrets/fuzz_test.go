package secrets

import (
	"bytes"
	"context"
	"testing"
)

// FuzzOpen feeds arbitrary ciphertexts (and fields) to Open. It must never
// panic, and it must succeed only for the exact bytes and binding that Seal
// produced.
func FuzzOpen(f *testing.F) {
	store := newMemDataKeyStore()
	k := mustKeyring(f, newMasterKey(f), store)
	const ws, conn, field = "ws1", "conn1", "password"
	type sealed struct{ plaintext, ct []byte }
	var known []sealed
	for _, pt := range [][]byte{nil, []byte("hunter2"), bytes.Repeat([]byte{0xa5}, 300)} {
		ct := mustSeal(f, k, ws, conn, field, pt)
		known = append(known, sealed{pt, ct})
		f.Add(ct, field)
		f.Add(ct, "api_key")
		f.Add(ct[:len(ct)-1], field)
		f.Add(append(bytes.Clone(ct), 0), field)
	}
	f.Add([]byte{}, field)
	f.Add([]byte{formatV1}, field)
	f.Add([]byte{0x02, 1, 2, 3}, field)
	f.Add(make([]byte, Overhead), field)

	f.Fuzz(func(t *testing.T, ct []byte, fld string) {
		got, err := k.Open(context.Background(), ws, conn, fld, ct)
		if err != nil {
			if got != nil {
				t.Fatal("a failed open returned bytes")
			}
			return
		}
		for _, s := range known {
			if fld == field && bytes.Equal(ct, s.ct) {
				if !bytes.Equal(got, s.plaintext) {
					t.Fatalf("opened to %q, sealed %q", got, s.plaintext)
				}
				return
			}
		}
		t.Fatalf("Open accepted bytes Seal never produced (field %q, %x)", fld, ct)
	})
}

// FuzzUnwrap feeds arbitrary wrapped data keys, as a damaged store row would
// hold them: no panic, and no key unless it is the one that was wrapped.
func FuzzUnwrap(f *testing.F) {
	wrap, err := newWrapAEAD(newMasterKey(f))
	if err != nil {
		f.Fatal(err)
	}
	dataKey := bytes.Repeat([]byte{7}, dataKeySize)
	good := wrapDataKey(wrap, "ws1", dataKey)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{0x02})
	f.Add(make([]byte, wrappedSize))
	f.Fuzz(func(t *testing.T, wrapped []byte) {
		got, err := unwrapDataKey(wrap, "ws1", wrapped)
		if err != nil {
			return
		}
		if !bytes.Equal(wrapped, good) || !bytes.Equal(got, dataKey) {
			t.Fatalf("unwrapped bytes that were never wrapped: %x", wrapped)
		}
	})
}
