package secrets

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenV1 is a stored data key and secret in format version 1. Secrets
// sealed by an earlier build must keep opening: if this test fails, the
// format changed, and stored secrets would be lost.
type goldenV1 struct {
	MasterKey      string `json:"master_key"`
	WorkspaceID    string `json:"workspace_id"`
	ConnectionID   string `json:"connection_id"`
	Field          string `json:"field"`
	Plaintext      string `json:"plaintext"`
	WrappedDataKey string `json:"wrapped_data_key"`
	Ciphertext     string `json:"ciphertext"`
}

func TestGoldenV1(t *testing.T) {
	path := filepath.Join("testdata", "golden-v1.json")
	if *update {
		writeGoldenV1(t, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenV1
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	master, wrapped, ct := mustHex(t, g.MasterKey), mustHex(t, g.WrappedDataKey), mustHex(t, g.Ciphertext)

	t.Run("keyring", func(t *testing.T) {
		store := newMemDataKeyStore()
		store.set(g.WorkspaceID, wrapped)
		got, err := mustKeyring(t, master, store).Open(context.Background(), g.WorkspaceID, g.ConnectionID, g.Field, ct)
		if err != nil || string(got) != g.Plaintext {
			t.Fatalf("open: %q, %v", got, err)
		}
	})

	// Decodes the sample by the description in format.go alone, so that the
	// description stays true.
	t.Run("as documented", func(t *testing.T) {
		lp := func(b []byte, s string) []byte {
			return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
		}
		wrapKey, err := hkdf.Key(sha256.New, master, nil, "relay data-key wrap v1", 32)
		if err != nil {
			t.Fatal(err)
		}
		wrapAEAD, _ := chacha20poly1305.NewX(wrapKey)
		if len(wrapped) != 73 || wrapped[0] != 0x01 {
			t.Fatalf("wrapped key: %d bytes, version %#x", len(wrapped), wrapped[0])
		}
		ad := lp(lp([]byte{0x01}, "relay data key"), g.WorkspaceID)
		dataKey, err := wrapAEAD.Open(nil, wrapped[1:25], wrapped[25:], ad)
		if err != nil {
			t.Fatalf("unwrap: %v", err)
		}
		aead, _ := chacha20poly1305.NewX(dataKey)
		if len(ct) != 41+len(g.Plaintext) || ct[0] != 0x01 {
			t.Fatalf("ciphertext: %d bytes, version %#x", len(ct), ct[0])
		}
		ad = lp(lp(lp(lp([]byte{0x01}, "relay connection secret"), g.WorkspaceID), g.ConnectionID), g.Field)
		got, err := aead.Open(nil, ct[1:25], ct[25:], ad)
		if err != nil || string(got) != g.Plaintext {
			t.Fatalf("open: %q, %v", got, err)
		}
	})
}

func writeGoldenV1(t *testing.T, path string) {
	t.Helper()
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	g := goldenV1{
		MasterKey:    hex.EncodeToString(master),
		WorkspaceID:  "01J9Z3K4M5N6P7Q8R9S0T1V2W3",
		ConnectionID: "01J9Z3K4M5N6P7Q8R9S0T1V2W4",
		Field:        "password",
		Plaintext:    "golden secret, format v1",
	}
	ct := mustSeal(t, mustKeyring(t, master, store), g.WorkspaceID, g.ConnectionID, g.Field, []byte(g.Plaintext))
	g.Ciphertext = hex.EncodeToString(ct)
	g.WrappedDataKey = hex.EncodeToString(store.snapshot()[g.WorkspaceID])
	out, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
