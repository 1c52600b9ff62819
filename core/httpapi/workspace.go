package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relayhq/relay/core"
)

// workspaceView is the caller's workspace as GET /v1/workspace shows it: the
// quota and retention in force and the key that is asking.
type workspaceView struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	RateLimit core.RateLimit `json:"rate_limit"`
	// Each retention is the workspace's own or, when its …_default is
	// true, the server's. Days of runs and audit records (0: forever),
	// hours of idempotency keys.
	RunRetentionDays            int        `json:"run_retention_days"`
	RunRetentionDefault         bool       `json:"run_retention_default"`
	AuditRetentionDays          int        `json:"audit_retention_days"`
	AuditRetentionDefault       bool       `json:"audit_retention_default"`
	IdempotencyRetentionHours   int        `json:"idempotency_retention_hours"`
	IdempotencyRetentionDefault bool       `json:"idempotency_retention_default"`
	CreatedAt                   time.Time  `json:"created_at"`
	Key                         keySummary `json:"key"`
}

type keySummary struct {
	ID   string    `json:"id"`
	Name string    `json:"name"`
	Role core.Role `json:"role"`
}

func (s *Server) getWorkspace(c *fiber.Ctx, p *principal) error {
	limit := s.cfg.DefaultRateLimit
	if p.Workspace.RateLimit != nil {
		limit = *p.Workspace.RateLimit
	}
	// The key's workspace row leaves most of the retention out: read it.
	ws, err := s.cfg.Store.Workspace(c.UserContext(), p.Workspace.ID)
	if err != nil {
		return err
	}
	view := workspaceView{
		ID:        ws.ID,
		Name:      ws.Name,
		RateLimit: limit,
		CreatedAt: ws.CreatedAt,
		Key:       keySummary{ID: p.Key.ID, Name: p.Key.Name, Role: p.Key.Role},
	}
	runs, audit, idem := s.cfg.Actions.DefaultRetention()
	view.RunRetentionDays, view.RunRetentionDefault = orDefault(ws.RunDays, runs)
	view.AuditRetentionDays, view.AuditRetentionDefault = orDefault(ws.AuditDays, audit)
	view.IdempotencyRetentionHours, view.IdempotencyRetentionDefault = orDefault(ws.IdempotencyHours, idem)
	return c.JSON(view)
}

// orDefault is own's value, or def (and true) when own is nil.
func orDefault(own *int, def int) (int, bool) {
	if own == nil {
		return def, true
	}
	return *own, false
}

// updateWorkspace changes the workspace's settings: today its retention
// of runs and audit records (days) and of idempotency keys (hours), each
// a number or null for the server's; a member left out stays as it is.
func (s *Server) updateWorkspace(c *fiber.Ctx, p *principal) error {
	var req struct {
		RunRetentionDays          json.RawMessage `json:"run_retention_days"`
		AuditRetentionDays        json.RawMessage `json:"audit_retention_days"`
		IdempotencyRetentionHours json.RawMessage `json:"idempotency_retention_hours"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	var u core.RetentionUpdate
	var fields []core.FieldError
	changed := map[string]any{} // for the audit record
	for _, f := range []struct {
		raw  json.RawMessage
		set  *bool
		v    **int
		name string
		unit string
	}{
		{req.RunRetentionDays, &u.SetRunDays, &u.RunDays, "run_retention_days", "days"},
		{req.AuditRetentionDays, &u.SetAuditDays, &u.AuditDays, "audit_retention_days", "days"},
		{req.IdempotencyRetentionHours, &u.SetIdempotencyHours, &u.IdempotencyHours, "idempotency_retention_hours", "hours"},
	} {
		if f.raw == nil {
			continue
		}
		*f.set = true
		if err := json.Unmarshal(f.raw, f.v); err != nil {
			fields = append(fields, core.FieldError{Pointer: "/" + f.name, Message: "want a whole number of " + f.unit + " or null"})
		}
		changed[f.name] = *f.v
	}
	if len(fields) > 0 {
		return &core.Error{Code: core.EInvalid, Message: fields[0].Pointer[1:] + ": " + fields[0].Message, Fields: fields}
	}
	if u.SetAuditDays && u.AuditDays != nil && *u.AuditDays < core.MinAPIAuditRetentionDays && *u.AuditDays >= 1 {
		return &core.Error{Code: core.EInvalid, Message: fmt.Sprintf("audit_retention_days: at least %d days through the API; the operator may set less", core.MinAPIAuditRetentionDays),
			Fields: []core.FieldError{{Pointer: "/audit_retention_days", Message: fmt.Sprintf("want %d to %d days, or null for the server's default", core.MinAPIAuditRetentionDays, core.MaxAuditRetentionDays)}}}
	}
	if !u.SetRunDays && !u.SetAuditDays && !u.SetIdempotencyHours {
		return core.Errorf(core.EInvalid, "nothing to change: the body sets run_retention_days, audit_retention_days (days) or idempotency_retention_hours (hours), or null for the server's default")
	}
	if err := s.cfg.Store.UpdateWorkspaceRetention(c.UserContext(), p.Workspace.ID, u); err != nil {
		s.auditFailure(c, p, "workspace.update", "workspace:"+p.Workspace.ID, err)
		return err
	}
	details, _ := jsonMarshal(changed)
	if err := s.cfg.Actions.Audit(c.UserContext(), p.caller(c), "workspace.update", "workspace:"+p.Workspace.ID, "success", details); err != nil {
		return err
	}
	return s.getWorkspace(c, p)
}

// exportWorkspace answers with the archive of everything the workspace
// owns (docs/operations.md, "GDPR: export and erasure"), built into a
// temporary file first so that a failure is an error response, not a
// cut download.
func (s *Server) exportWorkspace(c *fiber.Ctx, p *principal) error {
	f, err := os.CreateTemp("", "relay-export-*.tar.gz")
	if err != nil {
		return err
	}
	os.Remove(f.Name()) // the open file lives until the response has read it
	if err := s.cfg.Actions.Export(c.UserContext(), p.caller(c), f); err != nil {
		f.Close()
		return err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return err
	}
	c.Set(fiber.HeaderContentType, "application/gzip")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="relay-%s-%s.tar.gz"`, p.Workspace.Name, time.Now().UTC().Format("20060102T150405Z")))
	c.Response().SetBodyStream(f, int(size)) // closed once sent
	return nil
}

func (s *Server) previewEraseWorkspace(c *fiber.Ctx, p *principal) error {
	res, err := s.cfg.Actions.PreviewErase(c.UserContext(), p.caller(c))
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) eraseWorkspace(c *fiber.Ctx, p *principal) error {
	var req struct {
		ConfirmToken string `json:"confirm_token"`
	}
	if len(c.Body()) > 0 {
		if err := decodeBody(c, &req); err != nil {
			return err
		}
	}
	e, err := s.cfg.Actions.Erase(c.UserContext(), p.caller(c), req.ConfirmToken)
	if err != nil {
		return err
	}
	return c.JSON(e)
}
