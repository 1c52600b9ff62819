package httpapi

import (
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
