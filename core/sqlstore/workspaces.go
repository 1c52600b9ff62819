package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

const workspaceColumns = `id, name, rate_limit_rate, rate_limit_burst, run_retention_days, audit_retention_days,
	idempotency_retention_hours, created_at`

// workspaceRow is a workspaces row; core.Workspace keeps its quota in a
// pointer, which sqlx cannot fill from two nullable columns.
type workspaceRow struct {
	ID    string        `db:"id"`
	Name  string        `db:"name"`
	Rate  sql.NullInt64 `db:"rate_limit_rate"`
	Burst sql.NullInt64 `db:"rate_limit_burst"`
	// KeyForAuth reads the idempotency retention, which executions use,
	// and leaves the other two NULL.
	RunRetention         sql.NullInt64 `db:"run_retention_days"`
	AuditRetention       sql.NullInt64 `db:"audit_retention_days"`
	IdempotencyRetention sql.NullInt64 `db:"idempotency_retention_hours"`
	CreatedAt            time.Time     `db:"created_at"`
}

func (r *workspaceRow) workspace() *core.Workspace {
	w := &core.Workspace{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC()}
	if r.Rate.Valid && r.Burst.Valid {
		w.RateLimit = &core.RateLimit{Rate: int(r.Rate.Int64), Burst: int(r.Burst.Int64)}
	}
	w.RunDays = nullInt(r.RunRetention)
	w.AuditDays = nullInt(r.AuditRetention)
	w.IdempotencyHours = nullInt(r.IdempotencyRetention)
	return w
}

func nullInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// CreateWorkspace creates a workspace with a new id. EInvalid for a bad
// name, EConflict when the name is taken.
func (s *Store) CreateWorkspace(ctx context.Context, name string) (*core.Workspace, error) {
	if err := core.ValidateWorkspaceName(name); err != nil {
		return nil, err
	}
	w := &core.Workspace{ID: core.NewID(), Name: name, CreatedAt: now()}
	if err := insertWorkspace(ctx, s.db, w); err != nil {
		return nil, err
	}
	return w, nil
}

func insertWorkspace(ctx context.Context, db sqlx.ExtContext, w *core.Workspace) error {
	_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)`),
		w.ID, w.Name, dbTime(w.CreatedAt))
	if isUniqueViolation(err) {
		return core.Errorf(core.EConflict, "workspace %q already exists", w.Name)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: insert workspace %q: %w", w.Name, err)
	}
	return nil
}

// Workspace returns the workspace with that id, or ENotFound.
func (s *Store) Workspace(ctx context.Context, id string) (*core.Workspace, error) {
	return s.workspaceWhere(ctx, "id", id)
}

// WorkspaceByName returns the workspace with that name, or ENotFound.
func (s *Store) WorkspaceByName(ctx context.Context, name string) (*core.Workspace, error) {
	return s.workspaceWhere(ctx, "name", name)
}

// workspaceWhere looks a workspace up by a unique column; column is one of
// the two constants above, never caller input.
func (s *Store) workspaceWhere(ctx context.Context, column, value string) (*core.Workspace, error) {
	var r workspaceRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+workspaceColumns+` FROM workspaces WHERE `+column+` = ?`), value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no workspace with %s %q", column, value)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get workspace by %s: %w", column, err)
	}
	return r.workspace(), nil
}

// ListWorkspaces returns every workspace, oldest first.
func (s *Store) ListWorkspaces(ctx context.Context) ([]*core.Workspace, error) {
	var rows []workspaceRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+workspaceColumns+` FROM workspaces ORDER BY id`); err != nil {
		return nil, fmt.Errorf("sqlstore: list workspaces: %w", err)
	}
	ws := make([]*core.Workspace, len(rows))
	for i := range rows {
		ws[i] = rows[i].workspace()
	}
	return ws, nil
}

// SetWorkspaceRateLimit sets the workspace's own quota, or with nil goes
// back to the server default. EInvalid for a bad quota, ENotFound for an
// unknown id.
func (s *Store) SetWorkspaceRateLimit(ctx context.Context, id string, limit *core.RateLimit) error {
	var rate, burst sql.NullInt64
	if limit != nil {
		if err := limit.Validate(); err != nil {
			return err
		}
		rate = sql.NullInt64{Int64: int64(limit.Rate), Valid: true}
		burst = sql.NullInt64{Int64: int64(limit.Burst), Valid: true}
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE workspaces SET rate_limit_rate = ?, rate_limit_burst = ? WHERE id = ?`),
		rate, burst, id)
	if err != nil {
		return fmt.Errorf("sqlstore: set rate limit of workspace %s: %w", id, err)
	}
	return requireOneRow(res, "no workspace with id %q", id)
}

// Bootstrap creates the workspace named name with key as its first key, but
// only while the store has no workspace at all; it reports whether it did.
// When it did, key.WorkspaceID is the new workspace and key.CreatedAt is as
// stored. EInvalid for a bad name or key (see CreateKey).
func (s *Store) Bootstrap(ctx context.Context, name string, key *core.APIKey) (bool, error) {
	if err := core.ValidateWorkspaceName(name); err != nil {
		return false, err
	}
	if err := validateNewKey(key); err != nil {
		return false, err
	}
	w := &core.Workspace{ID: core.NewID(), Name: name, CreatedAt: now()}
	k := *key
	k.WorkspaceID = w.ID
	var created, lostRace bool
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Without the lock, two PostgreSQL transactions could both find the
		// table empty and, with different names, both create a workspace.
		if err := s.dialect.serialize(ctx, tx, "bootstrap"); err != nil {
			return fmt.Errorf("sqlstore: bootstrap: %w", err)
		}
		var one int
		err := tx.GetContext(ctx, &one, `SELECT 1 FROM workspaces LIMIT 1`)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: bootstrap: look for workspaces: %w", err)
		}
		if err := insertWorkspace(ctx, tx, w); err != nil {
			// CreateWorkspace does not take the bootstrap lock, so a
			// workspace of that name may have appeared meanwhile: the
			// store is no longer empty.
			lostRace = core.ErrorCode(err) == core.EConflict
			return err
		}
		if err := insertKey(ctx, tx, &k); err != nil {
			return err
		}
		created = true
		return nil
	})
	if lostRace {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if created {
		*key = k
	}
	return created, nil
}

// requireOneRow turns an UPDATE that matched nothing into ENotFound.
func requireOneRow(res sql.Result, format string, args ...any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: rows affected: %w", err)
	}
	if n == 0 {
		return core.Errorf(core.ENotFound, format, args...)
	}
	return nil
}
