// Package sqlstore keeps Relay's state (workspaces, API keys, connections
// and their sealed secrets, data keys, runs, idempotency records, confirm
// tokens, the audit log) in SQL: SQLite through the pure-Go modernc driver
// for a single machine, PostgreSQL through lib/pq for replicas. Both run the
// same queries; only the schema's column types and a few dialect details
// differ. Open connects, Migrate brings the schema up to date.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

var _ core.Store = (*Store)(nil)

// Store implements core.Store on SQLite or PostgreSQL. It is safe for
// concurrent use, and several processes may share one database.
type Store struct {
	db      *sqlx.DB
	dialect *dialect
	group   *committer
	// ownWriterConns: each group writer keeps a connection (see writer).
	ownWriterConns bool
}

// Open connects to the database that databaseURL names and checks that it
// answers. It does not migrate: call Migrate.
//
// A postgres:// or postgresql:// URL selects PostgreSQL; lib/pq reads its
// query parameters, including run-time parameters such as search_path.
// Anything else is a SQLite database: a file path, optionally prefixed with
// sqlite: (sqlite:///abs/path.db also works), or a file: URI. The store adds
// the SQLite settings it relies on; see sqliteDSN.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	d, dsn, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	if d == sqliteDialect {
		if err := restrictSQLiteFiles(dsn); err != nil {
			return nil, fmt.Errorf("sqlstore: SQLite database file: %w", err)
		}
	}
	pool, err := openCached(d, dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", d.name, err)
	}
	db := sqlx.NewDb(pool, d.driver)
	// database/sql keeps 2 idle connections by default: under a burst of
	// concurrent requests it would open and close connections all the time,
	// and opening one is costly on both databases (a PostgreSQL backend
	// process; SQLite's pragmas and, here, its statement cache).
	db.SetMaxIdleConns(maxIdleConns)
	// Past maxOpenConns, queries wait for a connection. A PostgreSQL
	// server takes 100 connections by default, for every replica and tool:
	// more would fail with "too many clients". SQLite has no such limit,
	// but without one, every burst of more concurrent requests than the
	// idle connections opened a connection for one query and closed it
	// after (each open runs the store's pragmas and starts an empty
	// statement cache): ~5% of a busy server's CPU.
	db.SetMaxOpenConns(maxOpenConns)
	if d == sqliteDialect && isSQLiteMemory(dsn) {
		// Every connection to :memory: is a database of its own, so the
		// pool must keep exactly one, and never close it: closing it
		// would drop the database.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	}
	// The URL is left out of errors: it may carry a password.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: connect to %s: %w", d.name, err)
	}
	// The one connection of an in-memory database cannot be a writer's
	// alone: reads would wait for it forever.
	st := &Store{db: db, dialect: d, ownWriterConns: !(d == sqliteDialect && isSQLiteMemory(dsn))}
	st.startCommitter()
	return st, nil
}

// maxIdleConns is how many open connections the pool keeps for reuse;
// maxOpenConns is how many it opens at most.
const (
	maxIdleConns = 32
	maxOpenConns = maxIdleConns
)

// parseDatabaseURL picks the dialect and the driver's DSN.
func parseDatabaseURL(databaseURL string) (*dialect, string, error) {
	switch {
	case databaseURL == "":
		return nil, "", errors.New("sqlstore: empty database URL")
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return postgresDialect, databaseURL, nil
	}
	target := databaseURL
	if rest, ok := strings.CutPrefix(target, "sqlite://"); ok {
		target = rest
	} else if rest, ok := strings.CutPrefix(target, "sqlite:"); ok {
		target = rest
	}
	if target == "" {
		return nil, "", errors.New("sqlstore: empty SQLite path")
	}
	dsn, err := sqliteDSN(target)
	if err != nil {
		return nil, "", err
	}
	return sqliteDialect, dsn, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.stopCommitter()
	return s.db.Close()
}

// inTx runs fn in a transaction and commits when fn returns nil; fn's
// errors come back as they are. On SQLite the transaction begins IMMEDIATE
// (see sqliteDSN), so it holds the write lock from its first statement and
// cannot fail half-way with SQLITE_BUSY when it turns from reading to
// writing.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w: %w", core.ErrOutcomeUnknown, err)
	}
	return nil
}

// dbTime is the form in which a time is stored. PostgreSQL keeps
// microseconds and rounds anything finer, so truncating first makes a time
// read back equal to the one written, on both databases.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func now() time.Time { return dbTime(time.Now()) }
