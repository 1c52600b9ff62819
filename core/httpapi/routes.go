package httpapi

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/relayhq/relay/core"
)

// route is one endpoint. role is the least role that may call it; an empty
// role makes the route public (no key). A public route under /v1 (another
// package's, core.Route) is still charged: to the request's address, or,
// when the request carries an API key, to its workspace once the key is
// checked.
type route struct {
	method  string
	path    string // Fiber syntax: /v1/keys/:id
	role    core.Role
	handler func(c *fiber.Ctx, p *principal) error
}

// groupRoutes are the routes of other packages (Config.Routes), as the
// server serves them.
func (s *Server) groupRoutes() []route {
	out := make([]route, len(s.cfg.Routes))
	for i, r := range s.cfg.Routes {
		out[i] = route{method: r.Method, path: fiberPath(r.Path), role: r.Role, handler: s.serveGroupRoute(r)}
	}
	return out
}

// fiberPath rewrites OpenAPI's {param} segments as Fiber's :param.
func fiberPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			parts[i] = ":" + part[1:len(part)-1]
		}
	}
	return strings.Join(parts, "/")
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
		{fiber.MethodPatch, "/v1/workspace", core.RoleAdmin, s.updateWorkspace},
		{fiber.MethodDelete, "/v1/workspace", core.RoleAdmin, s.eraseWorkspace},
		{fiber.MethodPost, "/v1/workspace/delete/preview", core.RoleAdmin, s.previewEraseWorkspace},
		{fiber.MethodPost, "/v1/workspace/export", core.RoleAdmin, s.exportWorkspace},
		{fiber.MethodGet, "/v1/keys", core.RoleAdmin, s.listKeys},
		{fiber.MethodPost, "/v1/keys", core.RoleAdmin, s.createKey},
		{fiber.MethodGet, "/v1/keys/:id", core.RoleAdmin, s.getKey},
		{fiber.MethodDelete, "/v1/keys/:id", core.RoleAdmin, s.revokeKey},

		{fiber.MethodGet, "/v1/connectors", core.RoleViewer, s.listConnectors},
		{fiber.MethodGet, "/v1/connections", core.RoleViewer, s.listConnections},
		{fiber.MethodPost, "/v1/connections", core.RoleAdmin, s.createConnection},
		{fiber.MethodGet, "/v1/connections/:id", core.RoleViewer, s.getConnection},
		{fiber.MethodPatch, "/v1/connections/:id", core.RoleAdmin, s.updateConnection},
		{fiber.MethodDelete, "/v1/connections/:id", core.RoleAdmin, s.deleteConnection},

		{fiber.MethodGet, "/v1/actions", core.RoleViewer, s.listActions},
		{fiber.MethodGet, "/v1/actions/:id", core.RoleViewer, s.getAction},
		{fiber.MethodPost, "/v1/actions/:id/preview", core.RoleDeveloper, s.previewAction},
		{fiber.MethodPost, "/v1/actions/:id/execute", core.RoleDeveloper, s.executeAction},
		{fiber.MethodPost, "/mcp", core.RoleViewer, s.mcp},

		{fiber.MethodGet, "/v1/runs", core.RoleViewer, s.listRuns},
		{fiber.MethodGet, "/v1/runs/:id", core.RoleViewer, s.getRun},
		{fiber.MethodGet, "/v1/runs/:id/events", core.RoleViewer, s.runEvents},
		{fiber.MethodPost, "/v1/runs/:id/retry", core.RoleDeveloper, s.retryRun},

		{fiber.MethodGet, "/v1/audit", core.RoleAdmin, s.listAudit},
	}
}

// noRoute answers a /v1 path that no route matched: 405 with Allow when
// the path exists with other methods, 404 otherwise. It admits the caller
// as any /v1 route does, so that every /v1 answer costs quota and says
// where the caller stands in the RateLimit headers.
func (s *Server) noRoute(c *fiber.Ctx) error {
	if p := c.Path(); p != "/v1" && !strings.HasPrefix(p, "/v1/") {
		return c.Next() // Use matches any path that starts with /v1, /v1x too
	}
	if _, err := s.admit(c, route{method: c.Method(), role: core.RoleViewer}); err != nil {
		return err
	}
	var allow []string
	for _, r := range s.routes {
		if pathMatches(r.path, c.Path()) {
			allow = append(allow, r.method)
			if r.method == fiber.MethodGet {
				allow = append(allow, fiber.MethodHead)
			}
		}
	}
	if len(allow) > 0 {
		c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
		return fiber.ErrMethodNotAllowed
	}
	return fiber.ErrNotFound
}

// pathMatches reports whether path matches the Fiber route pattern: the
// same segments, where a :param segment matches any non-empty one.
func pathMatches(pattern, path string) bool {
	ps, segs := strings.Split(pattern, "/"), strings.Split(strings.TrimSuffix(path, "/"), "/")
	if len(ps) != len(segs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, ":") {
			if segs[i] == "" {
				return false
			}
		} else if p != segs[i] {
			return false
		}
	}
	return true
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
