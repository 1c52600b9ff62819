package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

var (
	dbBytes   = bytes.Repeat([]byte("SQLite format 3\x00"), 100)
	blobBytes = []byte("a package's bytes")
	keyBytes  = []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n")
)

// archive writes an archive of the three files (the key when withKey).
func archive(t testing.TB, schema int, withKey bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{RelayVersion: "v1.2.3", CreatedAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC),
		Database: SQLite, SchemaVersion: schema, MasterKey: withKey})
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, data []byte) {
		if err := w.Add(name, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	add(DatabaseName, dbBytes)
	add(BlobName(sum(blobBytes)), blobBytes)
	if withKey {
		add(MasterKey, keyBytes)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m, err := Extract(bytes.NewReader(archive(t, 18, true)), dir, latest18)
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 18 || !m.MasterKey || m.RelayVersion != "v1.2.3" || len(m.Files) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	for name, want := range map[string][]byte{DatabaseName: dbBytes, BlobName(sum(blobBytes)): blobBytes, MasterKey: keyBytes} {
		path := filepath.Join(dir, filepath.FromSlash(name))
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", name, fi.Mode())
		}
	}
	// An older schema restores too (the server migrates it at start).
	if _, err := Extract(bytes.NewReader(archive(t, 12, false)), t.TempDir(), latest18); err != nil {
		t.Fatal(err)
	}
}

// rewrite rebuilds an archive's tar stream through edit, which may
// change, drop or add entries.
func rewrite(t *testing.T, data []byte, edit func(name string, body []byte) (string, []byte, bool)) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		th, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		name, body, keep := edit(th.Name, body)
		if !keep {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(body)), Mode: 0o600, Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func TestRefused(t *testing.T) {
	good := archive(t, 18, false)
	blob := BlobName(sum(blobBytes))
	keep := func(name string, body []byte) (string, []byte, bool) { return name, body, true }
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"not gzip", []byte("PK\x03\x04 a zip"), "not a gzipped archive"},
		{"truncated", good[:len(good)/2], "incomplete"},
		{"a flipped byte", flip(good, len(good)/3), "backup: "},
		{"a flipped byte at the end", flip(good, len(good)-6), "backup: "},
		{"newer schema", archive(t, 19, false), "newer than this Relay's 18"},
		{"no manifest", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) { return n, b, n != ManifestName }), "incomplete"},
		{"no header", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) { return n, b, n != HeaderName }), "not a Relay backup"},
		{"a changed database", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) {
			if n == DatabaseName {
				b = append(bytes.Clone(b), 'x')
			}
			return n, b, true
		}), "relay.db: 1601 bytes"},
		{"a dropped blob", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) { return n, b, n != blob }), "lists 2 files"},
		{"a blob that is not its sum", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) {
			if n == blob {
				b = []byte("other bytes")
			}
			return n, b, true
		}), "SHA-256"},
		{"a path out of the folder", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) {
			if n == blob {
				n = "../../etc/cron.d/x"
			}
			return n, b, true
		}), `unexpected entry "../../etc/cron.d/x"`},
		{"a header the manifest contradicts", rewrite(t, good, func(n string, b []byte) (string, []byte, bool) {
			if n == HeaderName {
				b = bytes.Replace(b, []byte(`"v1.2.3"`), []byte(`"v9.9.9"`), 1)
			}
			return n, b, true
		}), "manifest's header differs"},
		{"rewritten as it was", rewrite(t, good, keep), ""}, // accepted: the tests above fail for their change
	} {
		_, err := Extract(bytes.NewReader(c.data), t.TempDir(), latest18)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || core.ErrorCode(err) != core.EInvalid || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid_request with %q", c.name, err, c.want)
		}
	}
}

// latest18 is a build whose newest schema is 18.
func latest18(string) int { return 18 }

func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 0x40
	return out
}

// Extract takes any bytes without panicking, and what it accepts is
// consistent: every file the manifest lists is in the folder with its
// size and sum.
func FuzzExtract(f *testing.F) {
	f.Add(archive(f, 18, true))
	f.Add(archive(f, 3, false))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		m, err := Extract(bytes.NewReader(data), dir, latest18)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file.Name)))
			if err != nil || int64(len(got)) != file.Size || sum(got) != file.SHA256 {
				t.Fatalf("accepted %+v but the folder holds %d bytes (%v)", file, len(got), err)
			}
		}
	})
}
