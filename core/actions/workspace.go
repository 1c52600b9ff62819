package actions

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/relayhq/relay/core"
)

// A workspace's export and erasure (docs/operations.md, "GDPR: export
// and erasure"). Erasing is destructive as an action can be, and is
// confirmed the same way: a preview says what goes and issues a token
// bound to the workspace, and the erasure spends it.

// ErasePreview is what an erasure would delete, by table, and the token
// that confirms it.
type ErasePreview struct {
	Workspace    *core.Workspace  `json:"workspace"`
	Rows         map[string]int64 `json:"rows"`
	ConfirmToken string           `json:"confirm_token"`
	ExpiresAt    time.Time        `json:"expires_at"`
}

func eraseRequestHash(workspaceID string) []byte {
	h := sha256.Sum256([]byte("erase workspace " + workspaceID))
	return h[:]
}

// PreviewErase counts what erasing the caller's workspace would delete
// and issues the token that confirms it.
func (s *Service) PreviewErase(ctx context.Context, c Caller) (*ErasePreview, error) {
	ws, err := s.cfg.Store.Workspace(ctx, c.WorkspaceID)
	if err != nil {
		return nil, err
	}
	rows, err := s.cfg.Store.WorkspaceRowCounts(ctx, c.WorkspaceID)
	if err != nil {
		return nil, err
	}
	token, hash := newConfirmToken()
	expires := s.now().Add(core.ConfirmTokenTTL)
	if err := s.cfg.Store.SaveConfirmToken(ctx, &core.ConfirmToken{Hash: hash, WorkspaceID: c.WorkspaceID, Action: core.EraseWorkspaceAction,
		RequestHash: eraseRequestHash(c.WorkspaceID), ExpiresAt: expires}); err != nil {
		return nil, err
	}
	s.auditOutcome(ctx, c, "workspace.erase.preview", "workspace:"+c.WorkspaceID, nil, nil)
	return &ErasePreview{Workspace: ws, Rows: rows, ConfirmToken: token, ExpiresAt: expires}, nil
}

// Erase erases the caller's workspace with a token from PreviewErase:
// its data key first, then every row it owns; the operator's tombstone
// records who and when. The workspace's unwrapped data key is dropped
// from this server's memory.
func (s *Service) Erase(ctx context.Context, c Caller, token string) (*core.Erasure, error) {
	if token == "" {
		return nil, core.Errorf(core.EConfirmationRequired, "erasing a workspace needs confirmation: preview it (POST /v1/workspace/delete/preview) and pass its confirm_token")
	}
	if !confirmTokenShape(token) {
		return nil, core.Errorf(core.EConfirmationInvalid, "the confirm token is unknown, used, expired, or for another workspace; preview the erasure again")
	}
	e, err := s.cfg.Store.EraseWorkspace(ctx, &core.ConfirmToken{Hash: hashToken(token), WorkspaceID: c.WorkspaceID, Action: core.EraseWorkspaceAction,
		RequestHash: eraseRequestHash(c.WorkspaceID)}, &core.Erasure{WorkspaceID: c.WorkspaceID, KeyID: c.KeyID, RequestID: c.RequestID})
	if err != nil {
		return nil, err
	}
	if f, ok := s.cfg.Secrets.(interface{ Forget(workspaceID string) }); ok {
		f.Forget(c.WorkspaceID)
	}
	s.log.Info("workspace erased", "workspace_id", e.WorkspaceID, "key_id", e.KeyID, "request_id", e.RequestID,
		"audit_seq", e.AuditSeq, "audit_hash", e.AuditHash)
	return e, nil
}

// Export writes the archive of the caller's workspace to w and records
// that it was taken.
func (s *Service) Export(ctx context.Context, c Caller, w io.Writer) error {
	err := s.cfg.Store.ExportWorkspace(ctx, c.WorkspaceID, w)
	s.auditOutcome(ctx, c, "workspace.export", "workspace:"+c.WorkspaceID, err, nil)
	return err
}

// Retention: each workspace keeps its ended runs and its audit records
// for its own number of days, or the server's. A batch at a time goes per
// transaction, and after each the purge waits as long as the batch took
// (at least purgePause): it holds the database's writes at most half the
// time, a short batch at a time, so that a purge of a month of runs lets
// executions' writes through all along.
const (
	purgeBatch      = 100
	auditPurgeBatch = 200 // each batch is also verified and replaced by a signed checkpoint
	purgePause      = 5 * time.Millisecond
)

// PurgeRuns deletes, in every workspace, the ended runs older than its
// retention (defaultDays for a workspace without its own; 0 keeps them)
// and says how many it deleted.
func (s *Service) PurgeRuns(ctx context.Context, defaultDays int) (int64, error) {
	n, err := s.purgeEach(ctx, "runs", defaultDays, purgeBatch, func(ws *core.Workspace) *int { return ws.RunDays },
		func(ctx context.Context, workspaceID string, before time.Time) (int64, error) {
			return s.cfg.Store.PurgeRuns(ctx, workspaceID, before, purgeBatch)
		})
	if n > 0 {
		s.log.Info("purged runs past their retention", "runs", n)
	}
	return n, err
}

// PurgeAudit deletes, in every workspace, the audit records older than its
// retention (defaultDays for a workspace without its own; 0 keeps them),
// each workspace's leaving a checkpoint signed by the AuditSigner in their
// place, and says how many it deleted. Without an AuditSigner it keeps
// every record, and with AuditVerified none past the last one the
// server's check verified. A workspace whose chain is broken is not
// purged (the error says which); the others are.
func (s *Service) PurgeAudit(ctx context.Context, defaultDays int) (int64, error) {
	signer := s.cfg.AuditSigner
	if signer == nil {
		return 0, nil
	}
	n, err := s.purgeEach(ctx, "audit records", defaultDays, auditPurgeBatch, func(ws *core.Workspace) *int { return ws.AuditDays },
		func(ctx context.Context, workspaceID string, before time.Time) (int64, error) {
			through := int64(math.MaxInt64)
			if verified := s.cfg.AuditVerified; verified != nil {
				seq, ok := verified(workspaceID)
				if !ok {
					return 0, nil // not verified yet, or broken (the check reports it): not now
				}
				through = seq
			}
			return s.cfg.Store.PurgeAudit(ctx, workspaceID, before, through, auditPurgeBatch, func(prefix []*core.AuditRecord) (*core.AuditRecord, error) {
				return signer.Seal(prefix, before, s.now())
			})
		})
	if n > 0 {
		s.log.Info("purged audit records past their retention, leaving signed checkpoints", "records", n)
	}
	return n, err
}

// purgeEach runs purge, which deletes up to batch of a workspace's rows
// older than before, over every workspace until it deletes fewer, pausing
// between batches. own is the workspace's own retention in days, read
// again before each batch, so a retention raised while a long purge is
// under way holds from its next batch. A workspace whose purge fails is
// left for the next pass; the error, naming it, is returned once the
// others are done.
func (s *Service) purgeEach(ctx context.Context, what string, defaultDays, batch int, own func(*core.Workspace) *int,
	purge func(ctx context.Context, workspaceID string, before time.Time) (int64, error)) (int64, error) {
	list, err := s.cfg.Store.ListWorkspaces(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	var errs []error
	for _, listed := range list {
		for {
			ws, err := s.cfg.Store.Workspace(ctx, listed.ID)
			if core.ErrorCode(err) == core.ENotFound {
				break // erased since the list was read
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("purging the %s of workspace %s (id %s): %w", what, listed.Name, listed.ID, err))
				break
			}
			days := defaultDays
			if d := own(ws); d != nil {
				days = *d
			}
			if days <= 0 {
				break
			}
			before := s.now().Add(-time.Duration(days) * 24 * time.Hour)
			t0 := time.Now()
			n, err := purge(ctx, ws.ID, before)
			total += n
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("purging the %s of workspace %s (id %s): %w", what, ws.Name, ws.ID, err))
				break
			}
			if n < int64(batch) {
				break
			}
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(max(purgePause, time.Since(t0))):
			}
		}
	}
	return total, errors.Join(errs...)
}
