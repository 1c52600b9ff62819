package marketplace

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/relayhq/relay/core"
)

// Routes are the marketplace's endpoints, under /v1/marketplace, which
// the core's HTTP server mounts with its own authentication, roles and
// error handling. docs/marketplace.md lists them.
func (s *Service) Routes() []core.Route {
	table := s.routeTable()
	out := make([]core.Route, len(table))
	for i, r := range table {
		out[i] = core.Route{Method: r.method, Path: r.path, Role: r.role, Handle: r.handle}
	}
	return out
}

// route is one of the marketplace's endpoints and the least role that
// may call it.
type route struct {
	method, path string
	role         core.Role
	handle       func(ctx context.Context, req *core.Request) (*core.Response, error)
}

func (s *Service) routeTable() []route {
	templates := "/v1/marketplace/templates"
	routes := []route{
		// Listings are public, as the registry's packages are: anyone
		// finds templates, with or without a key (and a server that
		// installs from this one reads them for its tenants).
		{method: http.MethodGet, path: templates, handle: s.searchTemplates},
		{method: http.MethodGet, path: templates + "/{publisher}/{name}", handle: s.getListing},
	}
	return append(routes, s.installationRoutes()...)
}

func (s *Service) searchTemplates(ctx context.Context, req *core.Request) (*core.Response, error) {
	if s.cfg.Upstream != nil {
		return s.fromUpstream(ctx, "/v1/marketplace/templates", req)
	}
	for _, name := range []string{"q", "category", "publisher", "sort", "cursor", "limit"} {
		if len(req.Query[name]) > 1 {
			return nil, core.Errorf(core.EInvalid, "%s is given more than once", name)
		}
	}
	q := SearchQuery{Q: req.Query.Get("q"), Category: req.Query.Get("category"), Publisher: req.Query.Get("publisher"),
		Sort: req.Query.Get("sort"), Cursor: req.Query.Get("cursor")}
	if l := req.Query.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > core.MaxPageLimit {
			return nil, core.Errorf(core.EInvalid, "limit must be 1 to %d", core.MaxPageLimit)
		}
		q.Limit = n
	}
	page, err := s.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": page.Data, "sort": page.Sort, "next_cursor": next}), nil
}

func (s *Service) getListing(ctx context.Context, req *core.Request) (*core.Response, error) {
	if s.cfg.Upstream != nil {
		return s.fromUpstream(ctx, "/v1/marketplace/templates/"+url.PathEscape(req.Param("publisher"))+"/"+url.PathEscape(req.Param("name")), req)
	}
	l, err := s.Listing(ctx, req.Param("publisher")+"/"+req.Param("name"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, l), nil
}

// fromUpstream answers a listing route with the upstream marketplace's
// answer to the same request (path, and the request's query): a server
// that installs from another registry finds its templates there. The
// answer is the upstream's JSON as it is; an error is the upstream's, or
// unavailable when it does not answer.
func (s *Service) fromUpstream(ctx context.Context, path string, req *core.Request) (*core.Response, error) {
	if len(req.Query) > 0 {
		path += "?" + req.Query.Encode()
	}
	var body json.RawMessage
	if err := s.cfg.Upstream.Listings(ctx, path, &body); err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, body), nil
}
