package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

var (
	_ core.DataKeyStore   = (*Store)(nil)
	_ core.ServerKeyStore = (*Store)(nil)
)

// dataKeysLock is the lock name that makes creating a data key or a server
// key, and re-wrapping them all, exclusive on PostgreSQL, so that a key created
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

// WrappedServerKey returns the named wrapped server key, or ENotFound.
func (s *Store) WrappedServerKey(ctx context.Context, name string) ([]byte, error) {
	var wrapped []byte
	err := s.db.GetContext(ctx, &wrapped, s.db.Rebind(`SELECT wrapped FROM server_keys WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no server key %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get server key %s: %w", name, err)
	}
	return wrapped, nil
}

// CreateWrappedServerKey stores the named server key and returns it; when
// one of that name is stored already, it keeps that and returns it, so that
// racing callers all end up with the same key. EInvalid for an empty name
// or key.
func (s *Store) CreateWrappedServerKey(ctx context.Context, name string, wrapped []byte) ([]byte, error) {
	if name == "" {
		return nil, core.Errorf(core.EInvalid, "empty server key name")
	}
	if len(wrapped) == 0 {
		return nil, core.Errorf(core.EInvalid, "empty server key")
	}
	var stored []byte
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.dialect.serialize(ctx, tx, dataKeysLock); err != nil {
			return fmt.Errorf("sqlstore: create server key: %w", err)
		}
		at := now()
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO server_keys (name, wrapped, created_at, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`), name, wrapped, at, at)
		if err != nil {
			return fmt.Errorf("sqlstore: insert server key %s: %w", name, err)
		}
		err = tx.GetContext(ctx, &stored, tx.Rebind(`SELECT wrapped FROM server_keys WHERE name = ?`), name)
		if err != nil {
			return fmt.Errorf("sqlstore: read server key %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// RewrapDataKeys replaces every wrapped data key and every wrapped server
// key with what rewrap returns for it, in one transaction, and returns how
// many data keys it replaced. rewrap gets a data key's workspace id, or
// core.ServerKeyScope and a server key's name. When rewrap fails (or
// returns nothing) for any key, nothing changes and its error is returned,
// wrapped.
func (s *Store) RewrapDataKeys(ctx context.Context, rewrap func(id string, wrapped []byte) ([]byte, error)) (int, error) {
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
		var serverKeys []struct {
			Name    string `db:"name"`
			Wrapped []byte `db:"wrapped"`
		}
		if err := tx.SelectContext(ctx, &serverKeys, `SELECT name, wrapped FROM server_keys ORDER BY name`); err != nil {
			return fmt.Errorf("sqlstore: read server keys: %w", err)
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
		for _, k := range serverKeys {
			rewrapped, err := rewrap(core.ServerKeyScope+k.Name, k.Wrapped)
			if err != nil {
				return fmt.Errorf("sqlstore: rewrap server key %s: %w", k.Name, err)
			}
			if len(rewrapped) == 0 {
				return fmt.Errorf("sqlstore: rewrap server key %s: empty result", k.Name)
			}
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE server_keys SET wrapped = ?, updated_at = ? WHERE name = ?`),
				rewrapped, at, k.Name)
			if err != nil {
				return fmt.Errorf("sqlstore: store rewrapped server key %s: %w", k.Name, err)
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
