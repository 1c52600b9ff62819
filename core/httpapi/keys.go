package httpapi

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/relayhq/relay/core"
)

type createKeyRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// createdKey is the one response that carries a key's secret.
type createdKey struct {
	*core.APIKey
	Key string `json:"key"`
}

func (s *Server) createKey(c *fiber.Ctx, p *principal) error {
	k, token, err := s.newKey(c, p)
	if err != nil {
		s.auditFailure(c, p, "key.create", "", err)
		return err
	}
	c.Location("/v1/keys/" + k.ID)
	return c.Status(fiber.StatusCreated).JSON(createdKey{APIKey: k, Key: token})
}

// newKey makes and stores the key a create request asks for.
func (s *Server) newKey(c *fiber.Ctx, p *principal) (*core.APIKey, string, error) {
	var req createKeyRequest
	if err := decodeBody(c, &req); err != nil {
		return nil, "", err
	}
	role, err := core.ParseRole(req.Role)
	if err != nil {
		return nil, "", err
	}
	k, token, err := core.NewAPIKey(s.cfg.Hasher, p.Workspace.ID, req.Name, role, p.Key.ID)
	if err != nil {
		return nil, "", err
	}
	details, _ := jsonMarshal(map[string]any{"role": k.Role, "name": k.Name})
	if err := s.cfg.Store.CreateKey(c.UserContext(), k, p.caller(c).AuditRecord("key.create", "key:"+k.ID, "success", details)); err != nil {
		return nil, "", err
	}
	return k, token, nil
}

func (s *Server) listKeys(c *fiber.Ctx, p *principal) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	keys, next, err := s.cfg.Store.ListKeys(c.UserContext(), p.Workspace.ID, page)
	if err != nil {
		return err
	}
	return c.JSON(newList(keys, next))
}

func (s *Server) getKey(c *fiber.Ctx, p *principal) error {
	k, err := s.cfg.Store.Key(c.UserContext(), p.Workspace.ID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(k)
}

// revokeKey takes effect at once: every request looks its key up afresh.
func (s *Server) revokeKey(c *fiber.Ctx, p *principal) error {
	target := "key:" + c.Params("id")
	if err := s.cfg.Store.RevokeKey(c.UserContext(), p.Workspace.ID, c.Params("id"), time.Now().UTC(),
		p.caller(c).AuditRecord("key.revoke", target, "success", nil)); err != nil {
		s.auditFailure(c, p, "key.revoke", target, err)
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// auditFailure records a mutation that was refused or failed, with the
// error's code (never its text, which may quote input).
func (s *Server) auditFailure(c *fiber.Ctx, p *principal, action, target string, err error) {
	raw, _ := jsonMarshal(map[string]string{"error": core.ErrorCode(err)})
	if aerr := s.cfg.Actions.Audit(c.UserContext(), p.caller(c), action, target, "failure", raw); aerr != nil {
		s.log.Error("audit append failed", "action", action, "error", aerr)
	}
}
