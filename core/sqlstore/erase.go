package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Erasing a workspace (docs/operations.md, "GDPR: export and erasure").
// One transaction consumes the admin's confirm token, destroys the
// workspace's data key before anything else (the sealed secrets, wherever
// copies of them are, can no longer be opened), deletes every row the
// workspace owns and writes the operator's tombstone. A publisher the
// workspace registered stays, owned by no workspace: the packages it
// published are installed elsewhere and stay published.

// workspaceRows are the tables that hold a workspace's rows, by
// workspace_id, in the order they are deleted: the data key first, then
// each table before those it references. A test fails when a table with
// a workspace_id column is missing here.
var workspaceRows = []string{
	"workspace_data_keys",
	"connection_secrets",
	"confirm_tokens",
	"idempotency_records",
	"billing_reservations",
	"billing_alerts",
	"billing_alert_hooks",
	"billing_budgets",
	"billing_holdings",
	"billing_accounts",
	"billing_invoice_payments",
	"billing_credit_notes",
	"billing_invoices",
	"usage_daily",
	"runs",
	"audit_records",
	"api_keys",
	"registry_installs",
	"marketplace_installations",
	"connections",
}

// linesOf deletes the lines of a table's rows, which have no
// workspace_id of their own, before the rows.
var linesOf = map[string]string{
	"billing_credit_notes": `DELETE FROM billing_credit_note_lines WHERE credit_note_id IN (SELECT id FROM billing_credit_notes WHERE workspace_id = ?)`,
	"billing_invoices":     `DELETE FROM billing_invoice_lines WHERE invoice_id IN (SELECT id FROM billing_invoices WHERE workspace_id = ?)`,
}

// EraseWorkspace erases the workspace if token is a live confirm token
// issued for its erasure (core.ConfirmToken with Action core.EraseWorkspaceAction and
// the workspace's request hash), on behalf of the key and request in
// e. It returns the tombstone. EConfirmationInvalid for a token that is
// not; EConflict while the workspace has queued or running runs (their
// ends would be written to rows that are gone); ENotFound for no such
// workspace.
func (s *Store) EraseWorkspace(ctx context.Context, token *core.ConfirmToken, e *core.Erasure) (*core.Erasure, error) {
	if token == nil || e == nil || token.WorkspaceID == "" || token.WorkspaceID != e.WorkspaceID {
		return nil, core.Errorf(core.EInvalid, "an erasure needs its workspace's confirm token")
	}
	ws := e.WorkspaceID
	out := *e
	out.ErasedAt = dbTime(time.Now())
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE confirm_tokens SET used_at = ?
			WHERE token_hash = ? AND workspace_id = ? AND action = ? AND connection_id = '' AND request_hash = ?
				AND used_at IS NULL AND expires_at > ?`),
			out.ErasedAt, token.Hash, ws, core.EraseWorkspaceAction, token.RequestHash, out.ErasedAt)
		if err != nil {
			return fmt.Errorf("sqlstore: use confirm token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return core.Errorf(core.EConfirmationInvalid, "the confirm token is unknown, used, expired, or for another workspace; preview the erasure again")
		}
		var unfinished int
		if err := tx.GetContext(ctx, &unfinished, tx.Rebind(`SELECT COUNT(*) FROM runs WHERE workspace_id = ? AND status IN (?, ?)`),
			ws, string(core.RunQueued), string(core.RunRunning)); err != nil {
			return fmt.Errorf("sqlstore: count unfinished runs: %w", err)
		}
		if unfinished > 0 {
			return core.Errorf(core.EConflict, "the workspace has %d unfinished runs: erase it once they have ended", unfinished)
		}
		// Where the audit chain ended, for the tombstone.
		var last struct {
			Seq  int64  `db:"seq"`
			Hash []byte `db:"hash"`
		}
		err = tx.GetContext(ctx, &last, tx.Rebind(`SELECT seq, hash FROM audit_records WHERE workspace_id = ? ORDER BY seq DESC LIMIT 1`), ws)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: read the audit chain's end: %w", err)
		}
		out.AuditSeq, out.AuditHash = last.Seq, hex.EncodeToString(last.Hash)
		return eraseWorkspace(ctx, tx, ws, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func eraseWorkspace(ctx context.Context, tx *sqlx.Tx, ws string, e *core.Erasure) error {
	exec := func(what, query string) error {
		if _, err := tx.ExecContext(ctx, tx.Rebind(query), ws); err != nil {
			return fmt.Errorf("sqlstore: erase %s: %w", what, err)
		}
		return nil
	}
	for _, table := range workspaceRows {
		if lines, ok := linesOf[table]; ok {
			if err := exec(table+"' lines", lines); err != nil {
				return err
			}
		}
		if err := exec(table, `DELETE FROM `+table+` WHERE workspace_id = ?`); err != nil {
			return err
		}
	}
	if err := exec("publishers", `UPDATE registry_publishers SET workspace_id = NULL WHERE workspace_id = ?`); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM workspaces WHERE id = ?`), ws)
	if err != nil {
		return fmt.Errorf("sqlstore: erase the workspace: %w", err)
	}
	if err := requireOneRow(res, "no workspace with id %q", ws); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO workspace_erasures (workspace_id, key_id, request_id, audit_seq, audit_hash, erased_at)
		VALUES (?, ?, ?, ?, ?, ?)`), ws, e.KeyID, e.RequestID, e.AuditSeq, e.AuditHash, e.ErasedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: record the erasure: %w", err)
	}
	return nil
}

// Erasures lists the operator's tombstones, newest first.
func (s *Store) Erasures(ctx context.Context) ([]*core.Erasure, error) {
	var out []*core.Erasure
	err := s.db.SelectContext(ctx, &out, `SELECT workspace_id, key_id, request_id, audit_seq, audit_hash, erased_at
		FROM workspace_erasures ORDER BY erased_at DESC, workspace_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list erasures: %w", err)
	}
	for _, e := range out {
		e.ErasedAt = e.ErasedAt.UTC()
	}
	return out, nil
}

// WorkspaceRowCounts counts the workspace's rows in each table that holds
// them, for an erasure's preview; tables without any are left out.
func (s *Store) WorkspaceRowCounts(ctx context.Context, workspaceID string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, table := range workspaceRows {
		var n int64
		if err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE workspace_id = ?`), workspaceID); err != nil {
			return nil, fmt.Errorf("sqlstore: count %s: %w", table, err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out, nil
}
