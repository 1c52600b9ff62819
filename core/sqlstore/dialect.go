package sqlstore

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"
)

// dialect holds what differs between the two databases beyond the
// placeholders, which sqlx.Rebind handles.
type dialect struct {
	name   string // for messages
	driver string // database/sql driver name
	// migrations is the folder of embedded migrations for this database.
	migrations string
	// createMigrationsTable makes schema_migrations if it is missing.
	createMigrationsTable string
	// hasMigrationsTable selects one row with a boolean.
	hasMigrationsTable string
	// serializeTx, when set, takes a lock named by its one parameter for
	// the rest of the transaction.
	serializeTx string
	// serializeShared, when set, takes the same lock shared: the
	// transactions that take it shared run together, and none of them
	// with one that takes it with serializeTx.
	serializeShared string
}

var sqliteDialect = &dialect{
	name:       "SQLite",
	driver:     "sqlite",
	migrations: "migrations/sqlite",
	createMigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMP NOT NULL
	)`,
	hasMigrationsTable: `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')`,
	// Every transaction already begins IMMEDIATE, holding the one write
	// lock of the database file, so nothing more is needed.
	serializeTx: "",
}

var postgresDialect = &dialect{
	name:       "PostgreSQL",
	driver:     "postgres",
	migrations: "migrations/postgres",
	createMigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL
	)`,
	// to_regclass follows search_path, as the store's own queries do.
	hasMigrationsTable: `SELECT to_regclass('schema_migrations') IS NOT NULL`,
	// The lock is named after the schema too, so that deployments (and
	// tests) living in different schemas of one database do not wait for
	// each other. READ COMMITTED alone would let two transactions both see
	// "nothing there yet" and both act on it.
	serializeTx:     `SELECT pg_advisory_xact_lock(hashtext(concat('relay:', current_schema(), ':', ?::text)))`,
	serializeShared: `SELECT pg_advisory_xact_lock_shared(hashtext(concat('relay:', current_schema(), ':', ?::text)))`,
}

// serialize makes the rest of tx exclusive with every other transaction
// that serializes on the same name.
func (d *dialect) serialize(ctx context.Context, tx *sqlx.Tx, name string) error {
	if d.serializeTx == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(d.serializeTx), name); err != nil {
		return fmt.Errorf("advisory lock %q: %w", name, err)
	}
	return nil
}

// SQLite settings. The required ones are always set, whatever the URL says,
// because the store's correctness depends on them; the defaults give way to
// a value (or its driver alias) that the URL sets.
var (
	sqliteRequired = []sqliteParam{
		// Write transactions take the write lock at BEGIN, so that they
		// wait under busy_timeout instead of failing with SQLITE_BUSY when
		// a read turns into a write; Migrate and Bootstrap depend on it.
		{key: "_txlock", value: "immediate"},
		{key: "_foreign_keys", alias: "_fk", value: "1"},
		// Times are written as UTC text in SQLite's own format, which its
		// date functions understand and which sorts chronologically. The
		// default, time.Time.String, is neither.
		{key: "_time_format", value: "sqlite"},
		{key: "_timezone", value: "UTC"},
	}
	sqliteDefaults = []sqliteParam{
		// The CLI and a running server share the file: WAL lets readers
		// and one writer work at once, and busy_timeout makes a writer
		// wait its turn instead of failing.
		{key: "_journal_mode", alias: "_journal", value: "WAL"},
		{key: "_busy_timeout", alias: "_timeout", value: "10000"},
		// FULL: every commit is on disk before it returns. An execution is
		// acknowledged only after its commit, so a power cut must not take
		// back a commit the caller was told about (NORMAL, with WAL, can).
		{key: "_synchronous", alias: "_sync", value: "FULL"},
	}
)

// sqliteParam is a modernc DSN parameter. The driver prefers alias when both
// are given.
type sqliteParam struct{ key, alias, value string }

// sqliteDSN adds the store's settings to a SQLite path or file: URI, keeping
// the parameters it already has. The modernc driver reads the underscore
// parameters in both forms; SQLite itself reads a file: URI's others (mode,
// cache, ...).
func sqliteDSN(target string) (string, error) {
	path, rawQuery, _ := strings.Cut(target, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("sqlstore: SQLite URL parameters: %w", err)
	}
	for _, p := range sqliteRequired {
		if p.alias != "" {
			q.Del(p.alias)
		}
		q.Set(p.key, p.value)
	}
	for _, p := range sqliteDefaults {
		if !q.Has(p.key) && (p.alias == "" || !q.Has(p.alias)) {
			q.Set(p.key, p.value)
		}
	}
	return path + "?" + q.Encode(), nil
}

// isSQLiteMemory reports whether dsn names an in-memory database. SQLite
// reads mode= only from a file: URI; the driver drops it from a plain path.
func isSQLiteMemory(dsn string) bool {
	path, rawQuery, _ := strings.Cut(dsn, "?")
	if path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return true
	}
	q, _ := url.ParseQuery(rawQuery)
	return strings.HasPrefix(path, "file:") && q.Get("mode") == "memory"
}
