package registry

import (
	"bytes"
	"context"
	"net/http"
	"strconv"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// Routes are the registry's HTTP endpoints, under /v1/registry. Reading
// needs no key; registering a publisher needs a workspace admin's API key;
// everything a publisher does needs its token (Authorization: Bearer
// rpt_…). docs/registry.md lists them.
func (s *Service) Routes() []core.Route {
	table := s.routeTable()
	out := make([]core.Route, len(table))
	for i, r := range table {
		out[i] = core.Route{Method: r.method, Path: r.path, Role: r.role, Handle: r.handle}
		if r.publisher != nil {
			out[i].Handle = s.asPublisher(r.publisher)
		}
	}
	return out
}

// route is one of the registry's endpoints: handle, or publisher for one
// that takes a publisher's token.
type route struct {
	method, path string
	role         core.Role
	handle       func(ctx context.Context, req *core.Request) (*core.Response, error)
	publisher    publisherHandler
}

func (s *Service) routeTable() []route {
	pkgPath := "/v1/registry/packages/{publisher}/{name}"
	return []route{
		{method: http.MethodPost, path: "/v1/registry/publishers", role: core.RoleAdmin, handle: s.registerPublisher},
		{method: http.MethodGet, path: "/v1/registry/publishers/{publisher}", handle: s.getPublisher},
		{method: http.MethodPost, path: "/v1/registry/publishers/{publisher}/keys", publisher: s.addKey},
		{method: http.MethodDelete, path: "/v1/registry/publishers/{publisher}/keys/{key_id}", publisher: s.revokeKey},
		{method: http.MethodPost, path: "/v1/registry/uploads", publisher: s.startUpload},
		{method: http.MethodPut, path: "/v1/registry/uploads/{id}/parts/{n}", publisher: s.putPart},
		{method: http.MethodGet, path: "/v1/registry/packages", handle: s.searchPackages},
		{method: http.MethodGet, path: pkgPath, handle: s.getPackage},
		{method: http.MethodPost, path: pkgPath + "/versions", publisher: s.publishVersion},
		{method: http.MethodPost, path: pkgPath + "/deprecate", publisher: s.deprecate},
		{method: http.MethodGet, path: pkgPath + "/versions/{version}", handle: s.getVersion},
		{method: http.MethodPost, path: pkgPath + "/versions/{version}/yank", publisher: s.yank},
		{method: http.MethodGet, path: pkgPath + "/versions/{version}/download", handle: s.download},
		{method: http.MethodPost, path: "/v1/connectors/install", role: core.RoleAdmin, handle: s.install},
		{method: http.MethodGet, path: "/v1/connectors/lock", role: core.RoleViewer, handle: s.getLock},
		{method: http.MethodPost, path: "/v1/connectors/{name}/upgrade/plan", role: core.RoleAdmin, handle: s.planUpgrade},
		{method: http.MethodPost, path: "/v1/connectors/{name}/upgrade", role: core.RoleAdmin, handle: s.upgrade},
		{method: http.MethodPost, path: "/v1/connectors/{name}/rollback", role: core.RoleAdmin, handle: s.rollback},
		{method: http.MethodDelete, path: "/v1/connectors/{name}", role: core.RoleAdmin, handle: s.uninstall},
		{method: http.MethodGet, path: "/v1/registry/index", handle: s.getIndex(false)},
		{method: http.MethodGet, path: "/v1/registry/index.minisig", handle: s.getIndex(true)},
	}
}

type publisherHandler func(ctx context.Context, req *core.Request, p *Publisher, c *core.Caller) (*core.Response, error)

// asPublisher checks the request's publisher token, and that a publisher
// named in the path is the token's.
func (s *Service) asPublisher(h publisherHandler) func(ctx context.Context, req *core.Request) (*core.Response, error) {
	return func(ctx context.Context, req *core.Request) (*core.Response, error) {
		p, c, err := s.Authenticate(ctx, req.Header.Get("Authorization"), req.IP, req.RequestID)
		if err != nil {
			return nil, err
		}
		if name := req.Param("publisher"); name != "" && name != p.Name {
			return nil, core.Errorf(core.EForbidden, "this token is publisher %s's, not %s's", p.Name, name)
		}
		return h(ctx, req, p, c)
	}
}

func (s *Service) registerPublisher(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in struct {
		Name        string `json:"name"`
		DisplayName string `json:"display_name"`
		PublicKey   string `json:"public_key"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	p, token, err := s.RegisterPublisher(ctx, req.Caller, in.Name, in.DisplayName, in.PublicKey)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusCreated, map[string]any{"publisher": p, "token": token}), nil
}

func (s *Service) getPublisher(ctx context.Context, req *core.Request) (*core.Response, error) {
	p, err := s.Publisher(ctx, req.Param("publisher"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, p), nil
}

func (s *Service) addKey(ctx context.Context, req *core.Request, p *Publisher, c *core.Caller) (*core.Response, error) {
	var in struct {
		PublicKey string `json:"public_key"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	k, err := s.AddKey(ctx, p, c, in.PublicKey)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusCreated, k), nil
}

func (s *Service) revokeKey(ctx context.Context, req *core.Request, p *Publisher, c *core.Caller) (*core.Response, error) {
	if err := s.RevokeKey(ctx, p, c, req.Param("key_id")); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}

func (s *Service) startUpload(ctx context.Context, _ *core.Request, p *Publisher, _ *core.Caller) (*core.Response, error) {
	u, err := s.StartUpload(ctx, p)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusCreated, u), nil
}

func (s *Service) putPart(ctx context.Context, req *core.Request, p *Publisher, _ *core.Caller) (*core.Response, error) {
	n, err := strconv.Atoi(req.Param("n"))
	if err != nil {
		return nil, core.Errorf(core.EInvalid, "part %q: want a whole number", req.Param("n"))
	}
	u, err := s.PutPart(ctx, p, req.Param("id"), n, req.Body)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, u), nil
}

func (s *Service) publishVersion(ctx context.Context, req *core.Request, p *Publisher, c *core.Caller) (*core.Response, error) {
	var in struct {
		Upload    string `json:"upload"`
		Signature string `json:"signature"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	v, err := s.Publish(ctx, p, c, in.Upload, []byte(in.Signature))
	if err != nil {
		return nil, err
	}
	if name := req.Param("publisher") + "/" + req.Param("name"); v.Package != name {
		// Published all the same: the package says what it is.
		return nil, core.Errorf(core.EInvalid, "the package is %s, published as such; the path named %s", v.Package, name)
	}
	d, err := s.Version(ctx, v.Package, v.Version)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusCreated, d), nil
}

func (s *Service) deprecate(ctx context.Context, req *core.Request, p *Publisher, c *core.Caller) (*core.Response, error) {
	var in struct {
		Message string `json:"message"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if err := s.Deprecate(ctx, p, c, req.Param("publisher")+"/"+req.Param("name"), in.Message); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}

func (s *Service) yank(ctx context.Context, req *core.Request, p *Publisher, c *core.Caller) (*core.Response, error) {
	var in struct {
		Reason string `json:"reason"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if err := s.YankVersion(ctx, p, c, req.Param("publisher")+"/"+req.Param("name"), req.Param("version"), in.Reason); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}

func (s *Service) searchPackages(ctx context.Context, req *core.Request) (*core.Response, error) {
	page := core.Page{Cursor: req.Query.Get("cursor")}
	if l := req.Query.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > core.MaxPageLimit {
			return nil, core.Errorf(core.EInvalid, "limit must be 1 to %d", core.MaxPageLimit)
		}
		page.Limit = n
	}
	list, next, err := s.Search(ctx, req.Query.Get("q"), req.Query.Get("publisher"), page)
	if err != nil {
		return nil, err
	}
	var nextCursor *string
	if next != "" {
		nextCursor = &next
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": orEmpty(list), "next_cursor": nextCursor}), nil
}

func (s *Service) getPackage(ctx context.Context, req *core.Request) (*core.Response, error) {
	p, err := s.Package(ctx, req.Param("publisher")+"/"+req.Param("name"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, p), nil
}

func (s *Service) getVersion(ctx context.Context, req *core.Request) (*core.Response, error) {
	v, err := s.Version(ctx, req.Param("publisher")+"/"+req.Param("name"), req.Param("version"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, v), nil
}

func (s *Service) download(ctx context.Context, req *core.Request) (*core.Response, error) {
	r, v, err := s.Download(ctx, req.Param("publisher")+"/"+req.Param("name"), req.Param("version"))
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+relaypkg.FileName(v.Package, v.Version)+`"`)
	h.Set("Digest", "sha-256="+v.SHA256)
	return &core.Response{Header: h, Body: r}, nil
}

func (s *Service) getIndex(signature bool) func(ctx context.Context, req *core.Request) (*core.Response, error) {
	return func(ctx context.Context, _ *core.Request) (*core.Response, error) {
		doc, sig, err := s.SignedIndex(ctx)
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		body := doc
		h.Set("Content-Type", "application/json")
		if signature {
			body = sig
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
		return &core.Response{Header: h, Body: bytes.NewReader(body)}, nil
	}
}

func (s *Service) install(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in InstallRequest
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	inst, err := s.Install(ctx, req.Caller, in)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusCreated, inst), nil
}

func (s *Service) getLock(ctx context.Context, req *core.Request) (*core.Response, error) {
	lock, err := s.Lock(ctx, req.Caller.WorkspaceID)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": orEmpty(lock)}), nil
}

// upgradeRequest is the body of an upgrade and of its plan.
type upgradeRequest struct {
	Version string `json:"version,omitempty"`
	Accept  string `json:"accept,omitempty"`
}

func decodeOptional(req *core.Request, v any) error {
	if len(bytes.TrimSpace(req.Body)) == 0 {
		return nil
	}
	return req.DecodeJSON(v)
}

func (s *Service) planUpgrade(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in upgradeRequest
	if err := decodeOptional(req, &in); err != nil {
		return nil, err
	}
	plan, err := s.PlanUpgrade(ctx, req.Caller.WorkspaceID, req.Param("name"), in.Version)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, plan), nil
}

func (s *Service) upgrade(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in upgradeRequest
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	inst, err := s.ApplyUpgrade(ctx, req.Caller, req.Param("name"), in.Version, in.Accept)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, inst), nil
}

func (s *Service) rollback(ctx context.Context, req *core.Request) (*core.Response, error) {
	inst, err := s.Rollback(ctx, req.Caller, req.Param("name"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, inst), nil
}

func (s *Service) uninstall(ctx context.Context, req *core.Request) (*core.Response, error) {
	if err := s.Uninstall(ctx, req.Caller, req.Param("name")); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}

// orEmpty is list, or an empty one when it is nil: a list in an answer is
// never null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
