package actions

import (
	"bytes"
	"context"
	"net/http"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/redact"
)

// RetryRequest is what a caller sends to run a run again.
type RetryRequest struct {
	Mode         string `json:"mode,omitempty"` // "sync" (default) or "async"
	ConfirmToken string `json:"confirm_token,omitempty"`
}

// Retry runs a failed or interrupted run of the workspace again, as a new
// run linked to it (RetryOf), with the same params, on its connection as
// the connection is now. The connector gets the first run's idempotency
// key, so a service that dedupes on it (a webhook receiver on webhook-id)
// drops a repeat of what the first run may have done. The first run's
// Idempotency-Key keeps replaying the first run's answer.
//
// A run has at most one retry: asking again answers with that retry, as
// it is now, Replayed. An action that needs confirmation needs a confirm
// token from a preview of the same params, as for Execute.
func (s *Service) Retry(ctx context.Context, c Caller, runID string, req RetryRequest) (*Result, error) {
	async, err := parseMode(req.Mode)
	if err != nil {
		return nil, err
	}
	orig, err := s.cfg.Store.Run(ctx, c.WorkspaceID, runID)
	if err != nil {
		return nil, err
	}
	if res, err := s.priorRetry(ctx, c.WorkspaceID, runID); res != nil || err != nil {
		return res, err
	}
	if orig.Status != core.RunFailed && orig.Status != core.RunInterrupted {
		return nil, core.Errorf(core.EConflict, "run %s is %s: only a failed or interrupted run can be retried", orig.ID, orig.Status)
	}
	t, err := s.retryTarget(ctx, orig)
	if err != nil {
		return nil, err
	}
	sealed, err := s.cfg.Store.RunInput(ctx, c.WorkspaceID, orig.ID)
	if err != nil {
		return nil, err
	}
	params, err := s.runParams(ctx, orig, sealed)
	if err != nil {
		return nil, err
	}
	if sealed == nil && bytes.Contains(params, []byte(redact.Placeholder)) {
		// Stored before runs kept their params whole.
		return nil, core.Errorf(core.EConflict, "run %s's params were redacted and not kept: execute the action again", orig.ID)
	}
	// The action may have changed since (the connection moved to another
	// version): the params must still be good.
	if err := s.schemas.validate(t.action.InputSchema, params, core.EInvalidParams, "params"); err != nil {
		return nil, err
	}
	if params, err = canonical(params); err != nil {
		return nil, core.Errorf(core.EInvalidParams, "params are not JSON: %v", err)
	}
	reqHash := requestHash(t.id, t.conn.ID, params)
	if t.needsConfirmation() {
		if err := s.useConfirmToken(ctx, c, t, req.ConfirmToken, reqHash); err != nil {
			s.auditOutcome(ctx, c, "run.retry", "run:"+orig.ID, err, s.callDetails(t, params))
			return nil, err
		}
	}
	res, err := s.start(ctx, c, t, params, launch{async: async, reqHash: reqHash, retryOf: orig})
	if core.ErrorCode(err) == core.EConflict {
		// A concurrent retry of the same run was stored first.
		if res, perr := s.priorRetry(ctx, c.WorkspaceID, runID); res != nil || perr != nil {
			return res, perr
		}
	}
	return res, err
}

// priorRetry answers with the run's retry when it has one: nil, nil when
// it has none.
func (s *Service) priorRetry(ctx context.Context, workspaceID, runID string) (*Result, error) {
	prior, err := s.cfg.Store.RetryOf(ctx, workspaceID, runID)
	switch core.ErrorCode(err) {
	case "":
		return &Result{Status: http.StatusOK, Body: mustJSON(prior), Replayed: true}, nil
	case core.ENotFound:
		return nil, nil
	}
	return nil, err
}

// retryTarget is the action of a run to retry, on its connection as it is
// now.
func (s *Service) retryTarget(ctx context.Context, orig *core.Run) (*target, error) {
	conn, err := s.cfg.Store.Connection(ctx, orig.WorkspaceID, orig.ConnectionID)
	if core.ErrorCode(err) == core.ENotFound {
		return nil, core.Errorf(core.EConflict, "run %s's connection %q was deleted: execute the action on another", orig.ID, orig.ConnectionName)
	}
	if err != nil {
		return nil, err
	}
	entry, err := s.cfg.Catalog.Get(conn.Ref())
	if err != nil {
		return nil, core.Errorf(core.EConnectorUnavailable, "connector %s of connection %q is not installed on this server", conn.Ref(), conn.Name)
	}
	name := orig.ConnectorAction()
	a := entry.Manifest.Action(name)
	if a == nil {
		return nil, core.Errorf(core.EUnknownAction, "connector %s has no action %q any more", conn.Ref(), name)
	}
	return &target{id: orig.Action, conn: conn, entry: entry, action: a, preset: orig.Preset}, nil
}
