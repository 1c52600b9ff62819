package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

const confirmTokenColumns = `token_hash, workspace_id, action, connection_id, request_hash, expires_at`

// SaveConfirmToken stores a token's hash and binding; t.ExpiresAt is left
// as stored. EInvalid for a token without hash, workspace or expiry,
// ENotFound for an unknown workspace, EConflict for a hash already stored.
func (s *Store) SaveConfirmToken(ctx context.Context, t *core.ConfirmToken) error {
	if t == nil || len(t.Hash) == 0 || t.WorkspaceID == "" || t.ExpiresAt.IsZero() {
		return core.Errorf(core.EInvalid, "confirm token without hash, workspace or expiry")
	}
	t.ExpiresAt = dbTime(t.ExpiresAt)
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO confirm_tokens (`+confirmTokenColumns+`)
		VALUES (?, ?, ?, ?, ?, ?)`),
		t.Hash, t.WorkspaceID, t.Action, t.ConnectionID, t.RequestHash, t.ExpiresAt)
	switch {
	case isUniqueViolation(err):
		return core.Errorf(core.EConflict, "confirm token already stored")
	case isForeignKeyViolation(err):
		return core.Errorf(core.ENotFound, "no workspace with id %q", t.WorkspaceID)
	case err != nil:
		return fmt.Errorf("sqlstore: save confirm token: %w", err)
	}
	return nil
}

// UseConfirmToken consumes the workspace's token with that hash, as of
// now, and returns its binding. ENotFound when there is no such token in
// the workspace, or it was used, or it has expired; the three look alike
// on purpose.
//
// The guarded UPDATE is what makes a token single-use: of concurrent
// callers, exactly one changes the row (PostgreSQL re-checks the guard
// after waiting for the row lock; SQLite runs one writer at a time).
func (s *Store) UseConfirmToken(ctx context.Context, want *core.ConfirmToken, now time.Time) (*core.ConfirmToken, error) {
	if want == nil {
		return nil, core.Errorf(core.EInvalid, "missing confirm token")
	}
	hash := want.Hash
	if now.IsZero() {
		now = time.Now()
	}
	now = dbTime(now)
	var t core.ConfirmToken
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE confirm_tokens SET used_at = ?
			WHERE token_hash = ? AND workspace_id = ? AND action = ? AND connection_id = ? AND request_hash = ?
				AND used_at IS NULL AND expires_at > ?`),
			now, hash, want.WorkspaceID, want.Action, want.ConnectionID, want.RequestHash, now)
		if err != nil {
			return fmt.Errorf("sqlstore: use confirm token: %w", err)
		}
		if err := requireOneRow(res, "no such confirm token for this request, or it was used or has expired"); err != nil {
			return err
		}
		// Read in the same transaction, while the row is ours.
		err = tx.GetContext(ctx, &t, tx.Rebind(`SELECT `+confirmTokenColumns+` FROM confirm_tokens WHERE token_hash = ?`), hash)
		if err != nil {
			return fmt.Errorf("sqlstore: read confirm token: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	return &t, nil
}

// DeleteExpired drops the idempotency records and confirm tokens that
// have expired by now.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) error {
	if now.IsZero() {
		return core.Errorf(core.EInvalid, "missing time")
	}
	now = dbTime(now)
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM idempotency_records WHERE expires_at <= ?`), now); err != nil {
		return fmt.Errorf("sqlstore: delete expired idempotency records: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM confirm_tokens WHERE expires_at <= ?`), now); err != nil {
		return fmt.Errorf("sqlstore: delete expired confirm tokens: %w", err)
	}
	return nil
}
