package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/relayhq/relay/core"
)

// Retention (docs/operations.md, "Retention"). A workspace's ended runs
// older than its retention are deleted a batch at a time, each batch a
// short transaction of its own, so that a purge of a million runs never
// holds the database for long: executions' group commits go between
// batches. A run's id begins with its creation time, so "older than" is a
// range of the runs' primary key.

// SetWorkspaceRunRetention sets how many days the workspace keeps its
// ended runs, or with nil goes back to the server's default. EInvalid
// outside 1 to core.MaxRunRetentionDays, ENotFound for an unknown id.
func (s *Store) SetWorkspaceRunRetention(ctx context.Context, id string, days *int) error {
	var v any
	if days != nil {
		if *days < 1 || *days > core.MaxRunRetentionDays {
			return core.Errorf(core.EInvalid, "run retention must be from 1 to %d days", core.MaxRunRetentionDays)
		}
		v = *days
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE workspaces SET run_retention_days = ? WHERE id = ?`), v, id)
	if err != nil {
		return fmt.Errorf("sqlstore: set run retention: %w", err)
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
