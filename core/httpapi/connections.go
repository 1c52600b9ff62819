package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/relayhq/relay/core/actions"
)

func (s *Server) listConnectors(c *fiber.Ctx, p *principal) error {
	list, err := s.cfg.Actions.ListConnectors(c.UserContext(), p.Workspace.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"data": nonNil(list)})
}

// checkParam reads ?check=; the connector checks a connection's config
// unless the caller says check=false.
func checkParam(c *fiber.Ctx) bool { return c.Query("check") != "false" }

func (s *Server) createConnection(c *fiber.Ctx, p *principal) error {
	var in actions.ConnectionInput
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	v, err := s.cfg.Actions.CreateConnection(c.UserContext(), p.caller(c), in, checkParam(c))
	if err != nil {
		s.auditFailure(c, p, "connection.create", "", err)
		return err
	}
	c.Location("/v1/connections/" + v.ID)
	return c.Status(fiber.StatusCreated).JSON(v)
}

func (s *Server) listConnections(c *fiber.Ctx, p *principal) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	list, next, err := s.cfg.Actions.ListConnections(c.UserContext(), p.Workspace.ID, page)
	if err != nil {
		return err
	}
	return c.JSON(newList(list, next))
}

func (s *Server) getConnection(c *fiber.Ctx, p *principal) error {
	v, err := s.cfg.Actions.GetConnection(c.UserContext(), p.Workspace.ID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) updateConnection(c *fiber.Ctx, p *principal) error {
	var in actions.ConnectionInput
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	v, err := s.cfg.Actions.UpdateConnection(c.UserContext(), p.caller(c), c.Params("id"), in, checkParam(c))
	if err != nil {
		s.auditFailure(c, p, "connection.update", "connection:"+c.Params("id"), err)
		return err
	}
	return c.JSON(v)
}

func (s *Server) deleteConnection(c *fiber.Ctx, p *principal) error {
	if err := s.cfg.Actions.DeleteConnection(c.UserContext(), p.caller(c), c.Params("id")); err != nil {
		s.auditFailure(c, p, "connection.delete", "connection:"+c.Params("id"), err)
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
