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
// quota in force and the key that is asking.
type workspaceView struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	RateLimit core.RateLimit `json:"rate_limit"`
	// RunRetentionDays is how long ended runs are kept (0: forever),
	// the workspace's own or, when RunRetentionDefault, the server's.
	RunRetentionDays    int        `json:"run_retention_days"`
	RunRetentionDefault bool       `json:"run_retention_default"`
	CreatedAt           time.Time  `json:"created_at"`
	Key                 keySummary `json:"key"`
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
	// The key's workspace row leaves the retention out: read it.
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
	if ws.RunRetentionDays != nil {
		view.RunRetentionDays = *ws.RunRetentionDays
	} else {
		view.RunRetentionDays, view.RunRetentionDefault = s.cfg.Actions.RunRetentionDays(), true
	}
	return c.JSON(view)
}

// updateWorkspace changes the workspace's settings: today its run
// retention, in days, or null for the server's.
func (s *Server) updateWorkspace(c *fiber.Ctx, p *principal) error {
	var req struct {
		RunRetentionDays json.RawMessage `json:"run_retention_days"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.RunRetentionDays == nil {
		return core.Errorf(core.EInvalid, "nothing to change: the body sets run_retention_days (days, or null for the server's default)")
	}
	var days *int
	if err := json.Unmarshal(req.RunRetentionDays, &days); err != nil {
		return &core.Error{Code: core.EInvalid, Message: "run_retention_days is a whole number of days or null",
			Fields: []core.FieldError{{Pointer: "/run_retention_days", Message: "want a whole number of days or null"}}}
	}
	if err := s.cfg.Store.SetWorkspaceRunRetention(c.UserContext(), p.Workspace.ID, days); err != nil {
		s.auditFailure(c, p, "workspace.update", "workspace:"+p.Workspace.ID, err)
		return err
	}
	details, _ := jsonMarshal(map[string]any{"run_retention_days": days})
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
