package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMasterKeyCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "master.key")
	k1, created, err := LoadOrCreateMasterKey(path, true)
	if err != nil || !created || len(k1) != MasterKeySize {
		t.Fatalf("first load: key %d bytes, created %v, err %v", len(k1), created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	k2, created, err := LoadOrCreateMasterKey(path, true)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: created %v, err %v, same key %v", created, err, bytes.Equal(k1, k2))
	}
}

func TestMasterKeyRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	good := strings.Repeat("ab", MasterKeySize)
	tests := map[string]string{
		"missing, not created": filepath.Join(dir, "none.key"),
		"world readable":       write("open.key", good, 0o644),
		"too short":            write("short.key", good[:62], 0o600),
		"not hex":              write("nothex.key", strings.Repeat("zz", MasterKeySize), 0o600),
		"too long":             write("long.key", good+"00", 0o600),
	}
	for name, path := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := LoadOrCreateMasterKey(path, false); err == nil {
				t.Fatal("loaded a bad master key")
			} else if strings.Contains(err.Error(), good) {
				t.Fatal("the error echoes the key file's contents")
			}
		})
	}
	if _, _, err := LoadOrCreateMasterKey(write("ok.key", good+"\n", 0o600), false); err != nil {
		t.Fatalf("a well-formed key was refused: %v", err)
	}
}

// TestMasterKeyConcurrentFirstStart races many first starts: they must all
// end up with one and the same complete key.
func TestMasterKeyConcurrentFirstStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 20
	keys := make(chan []byte, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			k, _, err := LoadOrCreateMasterKey(path, true)
			keys <- k
			errs <- err
		}()
	}
	var first []byte
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		k := <-keys
		if first == nil {
			first = k
		} else if !bytes.Equal(first, k) {
			t.Fatal("two first starts got different master keys")
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("%d files left in the folder, want only master.key", len(entries))
	}
}
