package core

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseKeyRoundTrip(t *testing.T) {
	id := NewID()
	token, secret := NewKeyToken(id)
	if len(token) != KeyLen {
		t.Fatalf("token length %d, want %d", len(token), KeyLen)
	}
	gotID, gotSecret, err := ParseKey(token)
	if err != nil {
		t.Fatalf("ParseKey(%q): %v", token, err)
	}
	if gotID != id || gotSecret != secret {
		t.Fatalf("ParseKey = %q, %q; want %q, %q", gotID, gotSecret, id, secret)
	}
}

func TestParseKeyRejects(t *testing.T) {
	token, _ := NewKeyToken(NewID())
	tests := map[string]string{
		"empty":              "",
		"no prefix":          "xyz_" + token[4:],
		"short":              token[:len(token)-1],
		"long":               token + "a",
		"upper case secret":  token[:len(token)-1] + "A",
		"bad separator":      token[:4+IDLen] + "-" + token[4+IDLen+1:],
		"id with u":          KeyPrefix + "u" + token[5:],
		"id overflow digit":  KeyPrefix + "8" + token[5:],
		"secret with 1":      token[:len(token)-2] + "1a",
		"non-canonical tail": token[:len(token)-1] + "b", // low padding bits set
		"bearer included":    "Bearer " + token[7:],
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if in == token {
				t.Skip("mutation produced the original token")
			}
			if _, _, err := ParseKey(in); ErrorCode(err) != EUnauthenticated {
				t.Fatalf("ParseKey(%q) error = %v, want %s", in, err, EUnauthenticated)
			}
		})
	}
}

func TestKeyHasher(t *testing.T) {
	h1, err := NewKeyHasherFromPepper(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := NewKeyHasherFromPepper(bytes.Repeat([]byte{2}, 32))
	k, token, err := NewAPIKey(h1, NewID(), "ci", RoleDeveloper, "")
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := ParseKey(token)
	if err != nil || id != k.ID {
		t.Fatalf("ParseKey: %v (id %q, want %q)", err, id, k.ID)
	}
	if !h1.Verify(id, secret, k.Hash) {
		t.Fatal("the key's own secret does not verify")
	}
	if h2.Verify(id, secret, k.Hash) {
		t.Fatal("a hash verified under another pepper")
	}
	if h1.Verify(NewID(), secret, k.Hash) {
		t.Fatal("a hash verified for another key id")
	}
	if strings.Contains(string(k.Hash), secret) {
		t.Fatal("the stored hash contains the secret")
	}
	for _, n := range []int{0, 16, 33} {
		if _, err := NewKeyHasherFromPepper(make([]byte, n)); err == nil {
			t.Errorf("a pepper of %d bytes was accepted", n)
		}
	}
	// The hasher keeps its own copy of the pepper.
	pepper := bytes.Repeat([]byte{3}, 32)
	h3, _ := NewKeyHasherFromPepper(pepper)
	want := h3.Hash(k.ID, secret)
	clear(pepper)
	if !h3.Verify(k.ID, secret, want) {
		t.Fatal("clearing the caller's pepper changed the hasher")
	}
}

func TestNewAPIKeyValidates(t *testing.T) {
	h, _ := NewKeyHasherFromPepper(make([]byte, 32))
	if _, _, err := NewAPIKey(h, NewID(), "x", Role("owner"), ""); ErrorCode(err) != EInvalid {
		t.Fatalf("unknown role: error %v, want %s", err, EInvalid)
	}
	if _, _, err := NewAPIKey(h, NewID(), strings.Repeat("n", 101), RoleViewer, ""); ErrorCode(err) != EInvalid {
		t.Fatalf("long name: error %v, want %s", err, EInvalid)
	}
}

// FuzzParseKey checks that the parser never panics and that whatever it
// accepts is exactly a well-formed key that re-assembles to the input.
func FuzzParseKey(f *testing.F) {
	token, _ := NewKeyToken(NewID())
	f.Add(token)
	f.Add("")
	f.Add("rly_")
	f.Add(KeyPrefix + strings.Repeat("z", IDLen) + "_" + strings.Repeat("a", keySecretLen))
	f.Add(token[:len(token)-1] + "\xff")
	f.Fuzz(func(t *testing.T, in string) {
		id, secret, err := ParseKey(in)
		if err != nil {
			if ErrorCode(err) != EUnauthenticated {
				t.Fatalf("error code %q, want %q", ErrorCode(err), EUnauthenticated)
			}
			return
		}
		if KeyPrefix+id+"_"+secret != in {
			t.Fatalf("accepted %q but parts re-assemble to %q", in, KeyPrefix+id+"_"+secret)
		}
		if !ValidID(id) || len(secret) != keySecretLen {
			t.Fatalf("accepted malformed parts %q %q", id, secret)
		}
	})
}

func BenchmarkParseAndVerifyKey(b *testing.B) {
	h, _ := NewKeyHasherFromPepper(make([]byte, 32))
	k, token, _ := NewAPIKey(h, NewID(), "bench", RoleViewer, "")
	b.ReportAllocs()
	for b.Loop() {
		id, secret, err := ParseKey(token)
		if err != nil || !h.Verify(id, secret, k.Hash) {
			b.Fatal("key does not verify")
		}
	}
}
