package sqlstore

import (
	"context"
	"testing"
	"time"
)

// Migration 0012 lists the templates published before it, with the words
// of the version published last, indexed for search, with their
// categories and a row of install counts each; connectors are not listed.
func TestMigration0012ListsTemplates(t *testing.T) {
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s := migratedTo(t, databaseURL, 11)
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		s.must(`INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'acme', ?)`, now)
		s.must(`INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at, skeleton)
			VALUES ('acme', 'ws1', 'Acme', 'tok1', ?, ?, 'acme')`, []byte{1}, now)
		version := func(pkg, v, manifest string, at time.Time) {
			t.Helper()
			s.must(`INSERT INTO registry_versions (package, version, index_json, signature, signer_key_id, manifest, capabilities, blob_sha256, size, published_at)
				VALUES (?, ?, ?, 'sig', 'K1', ?, '{}', ?, 1, ?)`, pkg, v, []byte(`{}`), manifest, pkg+v, at)
		}
		s.must(`INSERT INTO registry_packages (name, publisher, created_at, updated_at, skeleton, kind) VALUES ('acme/kit', 'acme', ?, ?, 'acme/kit', 'template')`, now, now)
		version("acme/kit", "1.0.0", `{"name": "acme/kit", "version": "1.0.0", "title": "Old kit", "summary": "Old.", "categories": ["devops"]}`, now)
		version("acme/kit", "1.1.0", `{"name": "acme/kit", "version": "1.1.0", "title": "Incident kit", "summary": "Declare outages.",
			"readme": "Pages whoever is on call.", "categories": ["devops", "paging"], "icon": "icon.svg"}`, now.Add(time.Hour))
		s.must(`INSERT INTO registry_packages (name, publisher, created_at, updated_at, skeleton) VALUES ('acme/notes', 'acme', ?, ?, 'acme/notes')`, now, now)
		version("acme/notes", "1.0.0", `{"name": "notes", "version": "1.0.0", "title": "Notes"}`, now)

		if err := s.apply(11, 12); err != nil {
			t.Fatalf("migration 0012: %v", err)
		}
		var got []struct {
			Name       string `db:"name"`
			Title      string `db:"title"`
			Categories string `db:"categories"`
			Icon       string `db:"icon"`
			Readme     string `db:"readme"`
			Version    string `db:"version"`
		}
		if err := s.db.SelectContext(ctx, &got, `SELECT name, title, categories, icon, readme, version FROM marketplace_listings`); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Name != "acme/kit" || got[0].Title != "Incident kit" || got[0].Categories != "devops paging" ||
			got[0].Icon != "icon.svg" || got[0].Readme != "Pages whoever is on call." || got[0].Version != "1.1.0" {
			t.Fatalf("listings after the migration: %+v", got)
		}
		var categories []string
		if err := s.db.SelectContext(ctx, &categories, `SELECT category FROM marketplace_listing_categories WHERE name = 'acme/kit' ORDER BY category`); err != nil {
			t.Fatal(err)
		}
		if len(categories) != 2 || categories[0] != "devops" || categories[1] != "paging" {
			t.Errorf("categories: %v", categories)
		}
		var installs []int
		if err := s.db.SelectContext(ctx, &installs, `SELECT installs FROM marketplace_template_stats WHERE template = 'acme/kit'`); err != nil || len(installs) != 1 {
			t.Errorf("install counts: %v %v", installs, err)
		}
		find := `SELECT l.name FROM marketplace_listings_fts f JOIN marketplace_listings l ON l.id = f.rowid WHERE marketplace_listings_fts MATCH 'outage'`
		if s.Dialect() == "postgres" {
			find = `SELECT name FROM marketplace_listings WHERE search @@ to_tsquery('english', 'outage')`
		}
		var found []string
		if err := s.db.SelectContext(ctx, &found, find); err != nil || len(found) != 1 {
			t.Errorf("search after the migration: %v %v", found, err)
		}
	})
}
