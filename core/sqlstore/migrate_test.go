package sqlstore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
)

func migrationVersions(t *testing.T, d *dialect) []int {
	t.Helper()
	migs, err := loadMigrations(migrationFiles, d.migrations)
	if err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	var vs []int
	for _, m := range migs {
		vs = append(vs, m.version)
	}
	return vs
}

// Both dialects must describe the same schema history, numbered 1, 2, 3...
func TestMigrationsMatchAcrossDialects(t *testing.T) {
	lite := migrationVersions(t, sqliteDialect)
	pg := migrationVersions(t, postgresDialect)
	if !slices.Equal(lite, pg) {
		t.Fatalf("SQLite migrations %v, PostgreSQL migrations %v", lite, pg)
	}
	if len(lite) == 0 {
		t.Fatal("no migrations")
	}
	for i, v := range lite {
		if v != i+1 {
			t.Fatalf("versions %v: want 1, 2, 3... without gaps", lite)
		}
	}
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	all := migrationVersions(t, sqliteDialect)
	latest := all[len(all)-1]
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s := openStore(t, databaseURL)

		current, gotLatest, err := s.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("MigrationStatus before: %v", err)
		}
		if current != 0 || gotLatest != latest {
			t.Fatalf("MigrationStatus before = %d, %d; want 0, %d", current, gotLatest, latest)
		}

		applied, err := s.Migrate(ctx)
		if err != nil {
			t.Fatalf("first Migrate: %v", err)
		}
		if !slices.Equal(applied, all) {
			t.Fatalf("first Migrate applied %v, want %v", applied, all)
		}

		applied, err = s.Migrate(ctx)
		if err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		if len(applied) != 0 {
			t.Fatalf("second Migrate applied %v, want nothing", applied)
		}

		current, _, err = s.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("MigrationStatus after: %v", err)
		}
		if current != latest {
			t.Fatalf("current version %d, want %d", current, latest)
		}
		var rows int
		if err := s.db.GetContext(ctx, &rows, `SELECT COUNT(*) FROM schema_migrations`); err != nil {
			t.Fatal(err)
		}
		if rows != len(all) {
			t.Fatalf("schema_migrations has %d rows, want %d", rows, len(all))
		}
	})
}

// Replicas starting together all call Migrate; each migration must run
// exactly once and none of them may fail.
func TestMigrateConcurrently(t *testing.T) {
	all := migrationVersions(t, sqliteDialect)
	eachDatabase(t, func(t *testing.T, databaseURL string) {
		const handles = 4
		stores := make([]*Store, handles)
		for i := range stores {
			stores[i] = openStore(t, databaseURL)
		}
		applied := make([][]int, handles)
		errs := make([]error, handles)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			wg.Go(func() {
				<-start
				applied[i], errs[i] = s.Migrate(context.Background())
			})
		}
		close(start)
		wg.Wait()

		var union []int
		for i := range stores {
			if errs[i] != nil {
				t.Fatalf("Migrate on handle %d: %v", i, errs[i])
			}
			union = append(union, applied[i]...)
		}
		slices.Sort(union)
		if !slices.Equal(union, all) {
			t.Fatalf("handles applied %v between them, want each of %v once", applied, all)
		}
	})
}

func TestLoadMigrationsRefuses(t *testing.T) {
	file := func(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }
	tests := map[string]fstest.MapFS{
		"no version":     {"m/init.sql": file("SELECT 1")},
		"short version":  {"m/001_init.sql": file("SELECT 1")},
		"version zero":   {"m/0000_init.sql": file("SELECT 1")},
		"not sql":        {"m/0001_init.txt": file("SELECT 1")},
		"upper case":     {"m/0001_Init.sql": file("SELECT 1")},
		"shared version": {"m/0001_a.sql": file("SELECT 1"), "m/0001_b.sql": file("SELECT 1")},
	}
	for name, fsys := range tests {
		if migs, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loaded %v", name, migs)
		}
	}
	migs, err := loadMigrations(fstest.MapFS{
		"m/0010_later.sql": file("SELECT 10"),
		"m/0002_next.sql":  file("SELECT 2"),
	}, "m")
	if err != nil || len(migs) != 2 || migs[0].version != 2 || migs[1].version != 10 {
		t.Errorf("loadMigrations = %+v, %v; want versions 2, 10", migs, err)
	}
}

// A migration may hold several statements, and one that fails leaves no
// trace: neither its earlier statements nor its version.
func TestMigrationStatements(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		current, _, err := s.MigrationStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		broken := migration{version: current + 1, name: "broken", sql: `
			CREATE TABLE extra (id INTEGER PRIMARY KEY);
			INSERT INTO extra (id) VALUES (1);
			INSERT INTO no_such_table (id) VALUES (1);`}
		if applied, err := s.migrate(ctx, []migration{broken}); err == nil {
			t.Fatalf("broken migration applied %v", applied)
		}
		if _, err := s.db.ExecContext(ctx, `SELECT COUNT(*) FROM extra`); err == nil {
			t.Error("the broken migration's table survived")
		}
		if got, _, _ := s.MigrationStatus(ctx); got != current {
			t.Errorf("version %d after a failed migration, want %d", got, current)
		}

		several := migration{version: current + 1, name: "several", sql: `
			-- a comment first
			CREATE TABLE extra (id INTEGER PRIMARY KEY);
			INSERT INTO extra (id) VALUES (1);
			INSERT INTO extra (id) VALUES (2);
		`}
		applied, err := s.migrate(ctx, []migration{several})
		if err != nil || !slices.Equal(applied, []int{current + 1}) {
			t.Fatalf("migrate = %v, %v", applied, err)
		}
		var n int
		if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM extra`); err != nil || n != 2 {
			t.Errorf("extra has %d rows (%v), want 2", n, err)
		}
		if got, _, _ := s.MigrationStatus(ctx); got != current+1 {
			t.Errorf("version %d, want %d", got, current+1)
		}
	})
}

// partlyMigrated is a store with only its first migrations applied, for a
// test of what a later one does to rows already there.
type partlyMigrated struct {
	*Store
	t    *testing.T
	migs []migration
}

// migratedTo opens a store on databaseURL with its first n migrations.
func migratedTo(t *testing.T, databaseURL string, n int) *partlyMigrated {
	t.Helper()
	s := openStore(t, databaseURL)
	migs, err := loadMigrations(migrationFiles, s.dialect.migrations)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.migrate(context.Background(), migs[:n]); err != nil {
		t.Fatal(err)
	}
	return &partlyMigrated{Store: s, t: t, migs: migs}
}

// exec runs one statement.
func (p *partlyMigrated) exec(q string, args ...any) error {
	_, err := p.db.ExecContext(context.Background(), p.db.Rebind(q), args...)
	return err
}

// must runs one statement, failing the test if it fails.
func (p *partlyMigrated) must(q string, args ...any) {
	p.t.Helper()
	if err := p.exec(q, args...); err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
}

// apply applies migrations from..to-1 (numbered from 0).
func (p *partlyMigrated) apply(from, to int) error {
	_, err := p.migrate(context.Background(), p.migs[from:to])
	return err
}
