package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Only KeyForAuth reads secret_hash: a key listed or shown has no use for it,
// and a hash that is never loaded cannot leak.
const keyColumns = `id, workspace_id, name, role, created_at, created_by, revoked_at`

// CreateKey stores k. The caller sets ID (from core.NewID), WorkspaceID, Hash
// and CreatedAt; k.CreatedAt is left as stored (UTC, whole microseconds).
// EInvalid for a bad or incomplete key, ENotFound for an unknown workspace,
// EConflict for a taken id.
func (s *Store) CreateKey(ctx context.Context, k *core.APIKey, audit *core.AuditRecord) error {
	if err := validateNewKey(k); err != nil {
		return err
	}
	if err := prepareAuditOf(audit, k.WorkspaceID); err != nil {
		return err
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		if audit != nil {
			g.appendAudit(audit)
		}
		return insertKey(ctx, g.Tx, k)
	})
}

func validateNewKey(k *core.APIKey) error {
	if k == nil {
		return core.Errorf(core.EInvalid, "missing API key")
	}
	if err := k.Validate(); err != nil {
		return err
	}
	// ListKeys pages by id order and cursors carry ids, so ids must be
	// NewID's sortable kind; ParseKey would refuse any other at auth anyway.
	if !core.ValidID(k.ID) {
		return core.Errorf(core.EInvalid, "malformed API key id %q", k.ID)
	}
	if len(k.Hash) == 0 {
		return core.Errorf(core.EInvalid, "API key has no secret hash")
	}
	if k.CreatedAt.IsZero() {
		return core.Errorf(core.EInvalid, "API key has no creation time")
	}
	return nil
}

func insertKey(ctx context.Context, db sqlx.ExtContext, k *core.APIKey) error {
	k.CreatedAt = dbTime(k.CreatedAt)
	if k.RevokedAt != nil {
		t := dbTime(*k.RevokedAt)
		k.RevokedAt = &t
	}
	_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO api_keys
		(id, workspace_id, name, role, secret_hash, created_at, created_by, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		k.ID, k.WorkspaceID, k.Name, string(k.Role), k.Hash, k.CreatedAt, k.CreatedBy, k.RevokedAt)
	switch {
	case isUniqueViolation(err):
		return core.Errorf(core.EConflict, "API key %s already exists", k.ID)
	case isForeignKeyViolation(err):
		return core.Errorf(core.ENotFound, "no workspace with id %q", k.WorkspaceID)
	case err != nil:
		return fmt.Errorf("sqlstore: insert API key %s: %w", k.ID, err)
	}
	return nil
}

// KeyForAuth returns the active key with that id, Hash included, whatever
// its workspace, and that workspace, or ENotFound. It is one query: a
// primary-key lookup joined with the workspace's row.
func (s *Store) KeyForAuth(ctx context.Context, id string) (*core.APIKey, *core.Workspace, error) {
	var r struct {
		core.APIKey
		WS workspaceRow `db:"ws"`
	}
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT k.id, k.workspace_id, k.name, k.role, k.created_at, k.created_by,
			k.revoked_at, k.secret_hash, w.id AS "ws.id", w.name AS "ws.name", w.rate_limit_rate AS "ws.rate_limit_rate",
			w.rate_limit_burst AS "ws.rate_limit_burst", w.idempotency_retention_hours AS "ws.idempotency_retention_hours",
			w.created_at AS "ws.created_at"
		FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
		WHERE k.id = ? AND k.revoked_at IS NULL`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, core.Errorf(core.ENotFound, "no API key %v", id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: get API key %v: %w", id, err)
	}
	k := r.APIKey
	fromDB(&k)
	return &k, r.WS.workspace(), nil
}

// Key returns the active key id of the workspace, without its Hash, or
// ENotFound.
func (s *Store) Key(ctx context.Context, workspaceID, id string) (*core.APIKey, error) {
	return s.getKey(ctx, s.db.Rebind(`SELECT `+keyColumns+` FROM api_keys WHERE id = ? AND workspace_id = ? AND revoked_at IS NULL`), id, workspaceID)
}

// getKey runs query, whose first argument is the key id.
func (s *Store) getKey(ctx context.Context, query string, args ...any) (*core.APIKey, error) {
	var k core.APIKey
	err := s.db.GetContext(ctx, &k, query, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no API key %v", args[0])
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get API key %v: %w", args[0], err)
	}
	fromDB(&k)
	return &k, nil
}

// ListKeys lists the workspace's active keys in id order, which is creation
// order to the millisecond, without their Hash. next is the cursor of the
// following page, "" after the last one. EInvalid for a malformed cursor.
func (s *Store) ListKeys(ctx context.Context, workspaceID string, p core.Page) (keys []*core.APIKey, next string, err error) {
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	// One row more than the page says whether another page follows.
	err = s.db.SelectContext(ctx, &keys, s.db.Rebind(`SELECT `+keyColumns+` FROM api_keys
		WHERE workspace_id = ? AND revoked_at IS NULL AND id > ?
		ORDER BY id LIMIT ?`), workspaceID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlstore: list API keys: %w", err)
	}
	if len(keys) > limit {
		keys = keys[:limit]
		next = encodeCursor(keys[limit-1].ID)
	}
	for _, k := range keys {
		fromDB(k)
	}
	if keys == nil {
		// An empty page encodes as [], not null.
		keys = []*core.APIKey{}
	}
	return keys, next, nil
}

// RevokeKey marks the active key id of the workspace revoked at at;
// ENotFound when the workspace has no such active key.
func (s *Store) RevokeKey(ctx context.Context, workspaceID, id string, at time.Time, audit *core.AuditRecord) error {
	if at.IsZero() {
		return core.Errorf(core.EInvalid, "missing revocation time")
	}
	if err := prepareAuditOf(audit, workspaceID); err != nil {
		return err
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		res, err := g.ExecContext(ctx, g.Rebind(`UPDATE api_keys SET revoked_at = ?
			WHERE id = ? AND workspace_id = ? AND revoked_at IS NULL`), dbTime(at), id, workspaceID)
		if err != nil {
			return fmt.Errorf("sqlstore: revoke API key %s: %w", id, err)
		}
		if audit != nil {
			g.appendAudit(audit)
		}
		return requireOneRow(res, "no API key %s", id)
	})
}

// fromDB gives read times the UTC location: drivers hand them back in
// whatever zone the connection or the stored offset suggests.
func fromDB(k *core.APIKey) {
	k.CreatedAt = k.CreatedAt.UTC()
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		k.RevokedAt = &t
	}
}

func pageLimit(n int) int {
	switch {
	case n <= 0:
		return core.DefaultPageLimit
	case n > core.MaxPageLimit:
		return core.MaxPageLimit
	}
	return n
}

// A cursor is the last id of the page, in base64url so that callers treat
// it as opaque and the encoding can change without breaking anyone who does.
var cursorEncoding = base64.RawURLEncoding

func encodeCursor(lastID string) string { return cursorEncoding.EncodeToString([]byte(lastID)) }

// decodeCursor returns the id after which the page starts; "" for the first
// page.
func decodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	raw, err := cursorEncoding.DecodeString(cursor)
	if err != nil || !core.ValidID(string(raw)) {
		return "", core.Errorf(core.EInvalid, "malformed cursor")
	}
	return string(raw), nil
}
