package sqlstore

import (
	"context"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// The store's database is shared with the stores of other packages (the
// registry, the marketplace): their tables are in this package's
// migrations, so the schema has one version, and they read and write them
// through what follows, with their audit records committed in the same
// transaction as the change they record.

// Dialect names the database: "sqlite" or "postgres".
func (s *Store) Dialect() string {
	if s.dialect == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// DB is the connection pool, for reads.
func (s *Store) DB() *sqlx.DB { return s.db }

// InAuditedTx runs fn in a transaction (a group commit shared with other
// writes; see group.go) and appends the audit records that fn passes to
// audit, in order, in the same transaction: both commit or neither. fn's
// error, or the commit's, comes back; fn may run twice (a failed group is
// written again one write at a time), so it must not keep what it did on
// the first run.
func (s *Store) InAuditedTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error) error {
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		return fn(ctx, g.Tx, func(r *core.AuditRecord) error {
			if err := prepareAudit(r); err != nil {
				return err
			}
			g.appendAudit(r)
			return nil
		})
	})
}

// UniqueViolation reports whether err is a duplicate primary or unique
// key, in either database.
func (s *Store) UniqueViolation(err error) bool { return isUniqueViolation(err) }
