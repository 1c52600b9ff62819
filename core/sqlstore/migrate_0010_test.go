package sqlstore

import (
	"context"
	"testing"
	"time"
)

// Migration 0010 lets a publisher belong to no workspace (Relay's own).
// On SQLite it makes registry_publishers again: the publishers, their
// keys, packages and uploads, and the rules on them, must come through.
func TestMigration0010KeepsPublishers(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s := migratedTo(t, databaseURL, 9)
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, now)
		s.must(`INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at, skeleton)
			VALUES ('acme', 'ws1', 'Acme', 'tok1', ?, ?, 'acme')`, []byte{1, 2, 3}, now)
		s.must(`INSERT INTO registry_keys (publisher, key_id, public_key, added_at) VALUES ('acme', 'K1', 'pub', ?)`, now)
		s.must(`INSERT INTO registry_packages (name, publisher, created_at, updated_at, skeleton) VALUES ('acme/notes', 'acme', ?, ?, 'acme/notes')`, now, now)
		s.must(`INSERT INTO registry_uploads (id, publisher, size, created_at) VALUES ('up1', 'acme', 0, ?)`, now)

		if err := s.apply(9, 10); err != nil {
			t.Fatalf("migration 0010: %v", err)
		}
		var got struct {
			Workspace string    `db:"workspace_id"`
			Display   string    `db:"display_name"`
			Hash      []byte    `db:"token_hash"`
			Created   time.Time `db:"created_at"`
			Skeleton  string    `db:"skeleton"`
		}
		if err := s.db.GetContext(ctx, &got, `SELECT workspace_id, display_name, token_hash, created_at, skeleton FROM registry_publishers WHERE name = 'acme'`); err != nil {
			t.Fatal(err)
		}
		if got.Workspace != "ws1" || got.Display != "Acme" || string(got.Hash) != "\x01\x02\x03" || !got.Created.Equal(now) || got.Skeleton != "acme" {
			t.Fatalf("acme after the migration: %+v", got)
		}
		// A publisher of no workspace now goes in; the rest is as strict.
		s.must(`INSERT INTO registry_publishers (name, workspace_id, token_id, token_hash, created_at, skeleton) VALUES ('relay', NULL, 'tok2', ?, ?, 'relay')`, []byte{0}, now)
		for what, q := range map[string]string{
			"a key of no publisher":           `INSERT INTO registry_keys (publisher, key_id, public_key, added_at) VALUES ('nobody', 'K2', 'pub', '2030-01-01')`,
			"a publisher of no workspace row": `INSERT INTO registry_publishers (name, workspace_id, token_id, token_hash, created_at, skeleton) VALUES ('x', 'nows', 'tok3', 'h', '2030-01-01', 'x')`,
			"a look-alike":                    `INSERT INTO registry_publishers (name, workspace_id, token_id, token_hash, created_at, skeleton) VALUES ('acrne', 'ws1', 'tok4', 'h', '2030-01-01', 'acme')`,
			"a token id twice":                `INSERT INTO registry_publishers (name, workspace_id, token_id, token_hash, created_at, skeleton) VALUES ('other', 'ws1', 'tok1', 'h', '2030-01-01', 'other')`,
			"removing a publisher in use":     `DELETE FROM registry_publishers WHERE name = 'acme'`,
		} {
			if err := s.exec(q); err == nil {
				t.Errorf("%s was taken", what)
			}
		}
	})
}
