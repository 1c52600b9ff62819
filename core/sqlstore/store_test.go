package sqlstore

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// eachDatabase runs fn once per database, each time with the URL of a fresh,
// empty database of its own: a file in a temporary directory for SQLite, a
// new schema for PostgreSQL.
func eachDatabase(t *testing.T, fn func(t *testing.T, databaseURL string)) {
	t.Helper()
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) { fn(t, db.URL(t)) })
	}
}

// eachStore runs fn once per database with a migrated, empty store.
func eachStore(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		s := openStore(t, databaseURL)
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		fn(t, s)
	})
}

// openStore opens a handle that the test closes when it ends.
func openStore(t *testing.T, databaseURL string) *Store {
	t.Helper()
	s, err := Open(context.Background(), databaseURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// wantCode fails the test unless err carries the core error code want.
func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := core.ErrorCode(err); got != want {
		t.Fatalf("error code %q (%v), want %q", got, err, want)
	}
}

func mustCreateWorkspace(t *testing.T, s *Store, name string) *core.Workspace {
	t.Helper()
	w, err := s.CreateWorkspace(context.Background(), name)
	if err != nil {
		t.Fatalf("CreateWorkspace(%q): %v", name, err)
	}
	return w
}

// newKey returns a valid key of the workspace, not yet stored.
func newKey(workspaceID, name string) *core.APIKey {
	hash := make([]byte, 32)
	rand.Read(hash)
	return &core.APIKey{
		ID:          core.NewID(),
		WorkspaceID: workspaceID,
		Name:        name,
		Role:        core.RoleDeveloper,
		Hash:        hash,
		CreatedAt:   time.Now(),
	}
}

func mustCreateKey(t *testing.T, s *Store, workspaceID, name string) *core.APIKey {
	t.Helper()
	k := newKey(workspaceID, name)
	if err := s.CreateKey(context.Background(), k, nil); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return k
}
