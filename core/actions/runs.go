package actions

import (
	"context"

	"github.com/relayhq/relay/core"
)

// GetRun returns one run of the workspace.
func (s *Service) GetRun(ctx context.Context, workspaceID, id string) (*core.Run, error) {
	return s.cfg.Store.Run(ctx, workspaceID, id)
}

// ListRuns lists the workspace's runs, newest first.
func (s *Service) ListRuns(ctx context.Context, workspaceID string, f core.RunFilter, p core.Page) ([]*core.Run, string, error) {
	switch f.Status {
	case "", core.RunQueued, core.RunRunning, core.RunSucceeded, core.RunFailed, core.RunInterrupted:
	default:
		return nil, "", core.Errorf(core.EInvalid, "status must be one of queued, running, succeeded, failed, interrupted")
	}
	return s.cfg.Store.ListRuns(ctx, workspaceID, f, p)
}
