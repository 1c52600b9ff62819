package httpapi

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/relayhq/relay/core"
)

// route is one endpoint. role is the least role that may call it; an empty
// role makes the route public (no key).
type route struct {
	method  string
	path    string // Fiber syntax: /v1/keys/:id
	role    core.Role
	handler func(c *fiber.Ctx, p *principal) error
}

// routeTable lists every endpoint: the single place where what a role may
// do is written down.
func (s *Server) routeTable() []route {
	return []route{
		{fiber.MethodGet, "/healthz", "", s.healthz},
		{fiber.MethodGet, "/readyz", "", s.readyz},
		{fiber.MethodGet, "/metrics", "", s.metricsHandler()},
		{fiber.MethodGet, "/openapi.json", "", s.openAPI},

		{fiber.MethodGet, "/v1/workspace", core.RoleViewer, s.getWorkspace},
		{fiber.MethodGet, "/v1/keys", core.RoleAdmin, s.listKeys},
		{fiber.MethodPost, "/v1/keys", core.RoleAdmin, s.createKey},
		{fiber.MethodGet, "/v1/keys/:id", core.RoleAdmin, s.getKey},
		{fiber.MethodDelete, "/v1/keys/:id", core.RoleAdmin, s.revokeKey},
	}
}

// Route describes a registered endpoint, with its path in OpenAPI syntax.
type Route struct {
	Method string
	Path   string    // /v1/keys/{id}
	Role   core.Role // empty for public routes
}

// Routes lists the endpoints the server serves.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, r := range s.routes {
		out[i] = Route{Method: r.method, Path: openAPIPath(r.path), Role: r.role}
	}
	return out
}

// openAPIPath rewrites Fiber's :param segments as OpenAPI's {param}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, ":") {
			parts[i] = "{" + part[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
