package httpapi

import (
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
	CreatedAt time.Time      `json:"created_at"`
	Key       keySummary     `json:"key"`
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
	return c.JSON(workspaceView{
		ID:        p.Workspace.ID,
		Name:      p.Workspace.Name,
		RateLimit: limit,
		CreatedAt: p.Workspace.CreatedAt,
		Key:       keySummary{ID: p.Key.ID, Name: p.Key.Name, Role: p.Key.Role},
	})
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
