package sqlstore

import (
	"context"
	"testing"
	"time"
)

// Migration 0009 gives every publisher and package already there its
// skeleton (registry/relaypkg.Skeleton, computed in SQL) and makes the
// skeletons unique: on a database with rows, they come through with the
// skeletons Go would give them, and a look-alike is refused after.
func TestMigration0009Skeletons(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s := migratedTo(t, databaseURL, 8)
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, now)
		for i, name := range []string{"acme-corp", "vv0rn15"} {
			s.must(`INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at)
				VALUES (?, 'ws1', '', ?, ?, ?)`, name, "tok"+string(rune('a'+i)), []byte{1}, now)
		}
		s.must(`INSERT INTO registry_packages (name, publisher, created_at, updated_at) VALUES ('acme-corp/n0tes-1', 'acme-corp', ?, ?)`, now, now)
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"acme-corp": "acmecorp", "vv0rn15": "womls", "acme-corp/n0tes-1": "acmecorp/notesl"}
		for _, q := range []string{`SELECT name, skeleton FROM registry_publishers`, `SELECT name, skeleton FROM registry_packages`} {
			var rows []struct{ Name, Skeleton string }
			if err := s.db.SelectContext(ctx, &rows, q); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if want[r.Name] != r.Skeleton {
					t.Errorf("%s: skeleton %q, want %q", r.Name, r.Skeleton, want[r.Name])
				}
				delete(want, r.Name)
			}
		}
		if len(want) != 0 {
			t.Errorf("rows missing: %v", want)
		}
		err := s.exec(`INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at, skeleton)
			VALUES ('acmecorp', 'ws1', '', 'tokz', ?, ?, 'acmecorp')`, []byte{1}, now)
		if err == nil {
			t.Error("a publisher whose skeleton is taken was inserted")
		}
	})
}
