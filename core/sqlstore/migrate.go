package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jmoiron/sqlx"
)

// Each dialect has its own folder because column types differ; the two
// folders hold the same versions (a test checks it).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migrationFile is how a migration is named: a four-digit version, then a
// few words. Versions only ever grow; a released file never changes.
var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

type migration struct {
	version int
	name    string // the file name, for messages and schema_migrations
	sql     string // may hold several statements
}

// loadMigrations returns the migrations in dir of fsys, oldest first.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("sqlstore: migration file %s: name must look like 0001_words.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version == 0 {
			return nil, fmt.Errorf("sqlstore: migration file %s: versions start at 1", e.Name())
		}
		text, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: read migration %s: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: version, name: e.Name(), sql: string(text)})
	}
	slices.SortFunc(migs, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(migs); i++ {
		if migs[i].version == migs[i-1].version {
			return nil, fmt.Errorf("sqlstore: migrations %s and %s share a version", migs[i-1].name, migs[i].name)
		}
	}
	return migs, nil
}

// Migrate applies the migrations that the database lacks, oldest first,
// and returns their versions. Each migration runs in its own transaction
// together with its row in schema_migrations, so a failure leaves the
// database at the last good version. Several processes may migrate one
// database at once: each migration is applied exactly once.
func (s *Store) Migrate(ctx context.Context) (applied []int, err error) {
	migs, err := loadMigrations(migrationFiles, s.dialect.migrations)
	if err != nil {
		return nil, err
	}
	return s.migrate(ctx, migs)
}

func (s *Store) migrate(ctx context.Context, migs []migration) (applied []int, err error) {
	// A cheap look first, so that the usual start, with nothing to do,
	// takes no write lock.
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range migs {
		if slices.Contains(done, m.version) {
			continue
		}
		ok, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if ok {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// applyMigration applies m unless another process did first.
func (s *Store) applyMigration(ctx context.Context, m migration) (applied bool, err error) {
	fail := func(step string, err error) error {
		return fmt.Errorf("sqlstore: migration %s: %s: %w", m.name, step, err)
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.dialect.serialize(ctx, tx, "migrate"); err != nil {
			return fail("lock", err)
		}
		if _, err := tx.ExecContext(ctx, s.dialect.createMigrationsTable); err != nil {
			return fail("create schema_migrations", err)
		}
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version); err != nil {
			return fail("read schema_migrations", err)
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fail("apply", err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, now()); err != nil {
			return fail("record version", err)
		}
		applied = true
		return nil
	})
	return applied, err
}

// LatestSchema is the newest schema version this build knows for the
// database named by Dialect's names, "sqlite" or "postgres".
func LatestSchema(database string) (int, error) {
	d := sqliteDialect
	switch database {
	case "sqlite":
	case "postgres":
		d = postgresDialect
	default:
		return 0, fmt.Errorf("sqlstore: no database %q", database)
	}
	migs, err := loadMigrations(migrationFiles, d.migrations)
	if err != nil || len(migs) == 0 {
		return 0, err
	}
	return migs[len(migs)-1].version, nil
}

// MigrationStatus returns the schema version of the database (0 before the
// first migration) and the latest version that this build knows. Current
// above latest means that a newer build has migrated the database.
func (s *Store) MigrationStatus(ctx context.Context) (current, latest int, err error) {
	migs, err := loadMigrations(migrationFiles, s.dialect.migrations)
	if err != nil {
		return 0, 0, err
	}
	if len(migs) > 0 {
		latest = migs[len(migs)-1].version
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return 0, 0, err
	}
	if len(done) > 0 {
		current = done[len(done)-1]
	}
	return current, latest, nil
}

// appliedVersions lists the versions in schema_migrations, in order; none
// when the table does not exist yet.
func (s *Store) appliedVersions(ctx context.Context) ([]int, error) {
	var exists bool
	if err := s.db.GetContext(ctx, &exists, s.dialect.hasMigrationsTable); err != nil {
		return nil, fmt.Errorf("sqlstore: look for schema_migrations: %w", err)
	}
	if !exists {
		return nil, nil
	}
	var versions []int
	if err := s.db.SelectContext(ctx, &versions, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
		return nil, fmt.Errorf("sqlstore: read schema_migrations: %w", err)
	}
	return versions, nil
}
