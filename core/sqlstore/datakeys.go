package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

var _ core.DataKeyStore = (*Store)(nil)

// dataKeysLock is the lock name that makes creating a data key and
// re-wrapping them all exclusive on PostgreSQL, so that a key created
// during a rotation is either re-wrapped by it or created after it, never
// skipped half-way. SQLite's write lock does the same on its own.
const dataKeysLock = "data-keys"

// WrappedDataKey returns the workspace's wrapped data key, or ENotFound.
func (s *Store) WrappedDataKey(ctx context.Context, workspaceID string) ([]byte, error) {
	var wrapped []byte
	err := s.db.GetContext(ctx, &wrapped, s.db.Rebind(`SELECT wrapped FROM workspace_data_keys WHERE workspace_id = ?`), workspaceID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no data key for workspace %q", workspaceID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get data key of workspace %s: %w", workspaceID, err)
	}
	return wrapped, nil
}

// CreateWrappedDataKey stores the workspace's first data key and returns
// it; when the workspace already has one, it keeps that and returns it, so
// that racing callers all end up with the same key. ENotFound for an
// unknown workspace, EInvalid for an empty key.
func (s *Store) CreateWrappedDataKey(ctx context.Context, workspaceID string, wrapped []byte) ([]byte, error) {
	if len(wrapped) == 0 {
		return nil, core.Errorf(core.EInvalid, "empty data key")
	}
	var stored []byte
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.dialect.serialize(ctx, tx, dataKeysLock); err != nil {
			return fmt.Errorf("sqlstore: create data key: %w", err)
		}
		at := now()
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO workspace_data_keys (workspace_id, wrapped, created_at, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id) DO NOTHING`), workspaceID, wrapped, at, at)
		if isForeignKeyViolation(err) {
			return core.Errorf(core.ENotFound, "no workspace with id %q", workspaceID)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: insert data key of workspace %s: %w", workspaceID, err)
		}
		err = tx.GetContext(ctx, &stored, tx.Rebind(`SELECT wrapped FROM workspace_data_keys WHERE workspace_id = ?`), workspaceID)
		if err != nil {
			return fmt.Errorf("sqlstore: read data key of workspace %s: %w", workspaceID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// RewrapDataKeys replaces every wrapped data key with what rewrap returns
// for it, in one transaction, and returns how many it replaced. When rewrap
// fails (or returns nothing) for any key, nothing changes and its error is
// returned, wrapped.
func (s *Store) RewrapDataKeys(ctx context.Context, rewrap func(workspaceID string, wrapped []byte) ([]byte, error)) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.dialect.serialize(ctx, tx, dataKeysLock); err != nil {
			return fmt.Errorf("sqlstore: rewrap data keys: %w", err)
		}
		// Read whole before writing: one connection cannot update while
		// it still streams a result. Workspaces are few.
		var keys []struct {
			WorkspaceID string `db:"workspace_id"`
			Wrapped     []byte `db:"wrapped"`
		}
		if err := tx.SelectContext(ctx, &keys, `SELECT workspace_id, wrapped FROM workspace_data_keys ORDER BY workspace_id`); err != nil {
			return fmt.Errorf("sqlstore: read data keys: %w", err)
		}
		at := now()
		for _, k := range keys {
			rewrapped, err := rewrap(k.WorkspaceID, k.Wrapped)
			if err != nil {
				return fmt.Errorf("sqlstore: rewrap data key of workspace %s: %w", k.WorkspaceID, err)
			}
			if len(rewrapped) == 0 {
				return fmt.Errorf("sqlstore: rewrap data key of workspace %s: empty result", k.WorkspaceID)
			}
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE workspace_data_keys SET wrapped = ?, updated_at = ? WHERE workspace_id = ?`),
				rewrapped, at, k.WorkspaceID)
			if err != nil {
				return fmt.Errorf("sqlstore: store rewrapped data key of workspace %s: %w", k.WorkspaceID, err)
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
