package sqlstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// wantPerm fails the test unless the file at path has mode perm.
func wantPerm(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != perm {
		t.Errorf("%s has mode %#o, want %#o", filepath.Base(path), got, perm)
	}
}

// A SQLite database, its WAL and its shared-memory file are the server's
// user's alone, however the URL names the file.
func TestSQLiteFilesArePrivate(t *testing.T) {
	ctx := context.Background()
	for name, url := range map[string]func(path string) string{
		"path":         func(p string) string { return p },
		"sqlite URL":   func(p string) string { return "sqlite://" + p },
		"file URI":     func(p string) string { return "file:" + p + "?cache=private" },
		"file:/// URI": func(p string) string { return "file://" + p },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "relay.db")
			s := openStore(t, url(path))
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			mustCreateWorkspace(t, s, "acme")
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				wantPerm(t, f, 0o600)
			}
		})
	}

	// Files an earlier version left readable by others are tightened.
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.WriteFile(f, nil, 0o644); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, path)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		wantPerm(t, f, 0o600)
	}
}

func TestSQLiteFilePath(t *testing.T) {
	for dsn, want := range map[string]string{
		"relay-data/relay.db?_txlock=immediate": "relay-data/relay.db",
		"/var/lib/relay.db":                     "/var/lib/relay.db",
		"file:relay.db?mode=rwc":                "relay.db",
		"file:/var/lib/relay%20x.db":            "/var/lib/relay x.db",
		"file:///var/lib/relay.db":              "/var/lib/relay.db",
		"file://localhost/var/lib/relay.db":     "/var/lib/relay.db",
		":memory:":                              "",
		"file::memory:?cache=shared":            "",
		"file:relay.db?mode=memory":             "",
		"file:relay.db?mode=ro":                 "",
		"file:relay.db?immutable=1":             "",
		"file://elsewhere/var/lib/relay.db":     "",
	} {
		got, ok := sqliteFilePath(dsn)
		if got != want || ok != (want != "") {
			t.Errorf("sqliteFilePath(%q) = %q, %v; want %q", dsn, got, ok, want)
		}
	}
}
