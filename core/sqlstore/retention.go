package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Retention (docs/operations.md, "Retention"). A workspace's ended runs
// older than its retention are deleted a batch at a time, each batch a
// short transaction of its own, so that a purge of a million runs never
// holds the database for long: executions' group commits go between
// batches. A run's id begins with its creation time, so "older than" is a
// range of the runs' primary key. Audit records go from the start of
// their workspace's chain, a signed checkpoint in their place.

// UpdateWorkspaceRetention changes the retention settings u sets, in one
// statement; nil goes back to the server's default. EInvalid for one out
// of bounds (RetentionUpdate.Validate), ENotFound for an unknown id.
func (s *Store) UpdateWorkspaceRetention(ctx context.Context, id string, u core.RetentionUpdate) error {
	if err := u.Validate(); err != nil {
		return err
	}
	var sets []string
	var args []any
	for _, f := range []struct {
		set    bool
		v      *int
		column string
	}{
		{u.SetRunDays, u.RunDays, "run_retention_days"},
		{u.SetAuditDays, u.AuditDays, "audit_retention_days"},
		{u.SetIdempotencyHours, u.IdempotencyHours, "idempotency_retention_hours"},
	} {
		if f.set {
			sets = append(sets, f.column+" = ?")
			var v any
			if f.v != nil {
				v = *f.v
			}
			args = append(args, v)
		}
	}
	if len(sets) == 0 {
		return core.Errorf(core.EInvalid, "no retention to change")
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE workspaces SET `+strings.Join(sets, ", ")+` WHERE id = ?`), append(args, id)...)
	if err != nil {
		return fmt.Errorf("sqlstore: set retention: %w", err)
	}
	return requireOneRow(res, "no workspace with id %q", id)
}

// PurgeRuns deletes at most limit of the workspace's ended runs (succeeded,
// failed or interrupted) created before before, oldest first, and says
// how many it deleted: fewer than limit when it reached the end. Queued
// and running runs are never purged.
func (s *Store) PurgeRuns(ctx context.Context, workspaceID string, before time.Time, limit int) (int64, error) {
	if limit < 1 {
		return 0, core.Errorf(core.EInvalid, "purge limit %d", limit)
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM runs WHERE workspace_id = ? AND id IN (
		SELECT id FROM runs WHERE workspace_id = ? AND id < ? AND status IN (?, ?, ?) ORDER BY id LIMIT ?)`),
		workspaceID, workspaceID, core.IDFloor(before), string(core.RunSucceeded), string(core.RunFailed), string(core.RunInterrupted), limit)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: purge runs: %w", err)
	}
	return res.RowsAffected()
}

// PurgeAudit deletes the workspace's oldest audit records made before
// before, at most limit of them and none past seq through, and says how
// many it deleted: fewer than limit when no more may go. The record after
// the last one deleted must link to it, so that the checkpoint carries the
// hash the rest of the chain goes on from. In the same transaction, which holds
// the workspace's chain as appends do, the checkpoint that seal makes of
// them takes the place of the last one deleted (core/audit.Signer.Seal);
// a chain that begins with a checkpoint hands it to seal first, and seal
// replaces it. When seal fails (the records do not form a whole chain)
// nothing is deleted.
func (s *Store) PurgeAudit(ctx context.Context, workspaceID string, before time.Time, through int64, limit int, seal core.AuditSeal) (int64, error) {
	if limit < 1 {
		return 0, core.Errorf(core.EInvalid, "purge limit %d", limit)
	}
	var purged int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.dialect.serialize(ctx, tx, "audit:"+workspaceID); err != nil {
			return fmt.Errorf("sqlstore: purge audit records: %w", err)
		}
		var rows []auditRow
		err := tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT `+auditColumns+` FROM audit_records
			WHERE workspace_id = ? ORDER BY seq LIMIT ?`), workspaceID, limit+2) // a checkpoint, limit records, the next
		if err != nil {
			return fmt.Errorf("sqlstore: purge audit records: %w", err)
		}
		var prefix []*core.AuditRecord
		for i := range rows {
			r := rows[i].record()
			if i == 0 && r.Action == core.AuditCheckpointAction {
				prefix = append(prefix, r)
				continue
			}
			if !r.Time.Before(before) || r.Seq > through || int(purged) == limit {
				break
			}
			prefix = append(prefix, r)
			purged++
		}
		if purged == 0 {
			return nil
		}
		checkpoint, err := seal(prefix)
		if err != nil {
			purged = 0
			return err
		}
		last := prefix[len(prefix)-1]
		if len(rows) > len(prefix) {
			if next := rows[len(prefix)]; next.Seq != last.Seq+1 || !bytes.Equal(next.PrevHash, last.Hash) {
				purged = 0
				return fmt.Errorf("sqlstore: purge audit records: workspace %s: record seq %d does not link to seq %d; relay audit verify says more", workspaceID, next.Seq, last.Seq)
			}
		}
		if checkpoint.WorkspaceID != workspaceID || checkpoint.Seq != last.Seq {
			purged = 0
			return fmt.Errorf("sqlstore: purge audit records: the checkpoint is not of seq %d of workspace %s", last.Seq, workspaceID)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM audit_records WHERE workspace_id = ? AND seq <= ?`), workspaceID, last.Seq); err != nil {
			return fmt.Errorf("sqlstore: purge audit records: %w", err)
		}
		return insertAudits(ctx, tx, []*core.AuditRecord{checkpoint})
	})
	if err != nil {
		return 0, err
	}
	return purged, nil
}
