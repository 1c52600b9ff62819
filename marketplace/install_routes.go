package marketplace

import (
	"context"
	"net/http"

	"github.com/relayhq/relay/core"
)

// installationRoutes are the endpoints of a workspace's installations:
// an admin installs and uninstalls; any key of the workspace reads.
func (s *Service) installationRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/marketplace/templates/{publisher}/{name}/plan", role: core.RoleViewer, handle: s.planRoute},
		{method: http.MethodPost, path: "/v1/installations", role: core.RoleAdmin, handle: s.installRoute},
		{method: http.MethodGet, path: "/v1/installations", role: core.RoleViewer, handle: s.listInstallationsRoute},
		{method: http.MethodGet, path: "/v1/installations/{id}", role: core.RoleViewer, handle: s.getInstallationRoute},
		{method: http.MethodDelete, path: "/v1/installations/{id}", role: core.RoleAdmin, handle: s.uninstallRoute},
		{method: http.MethodPost, path: "/v1/installations/{id}/upgrade/preview", role: core.RoleAdmin, handle: s.previewUpgradeRoute},
		{method: http.MethodPost, path: "/v1/installations/{id}/upgrade", role: core.RoleAdmin, handle: s.upgradeRoute},
		{method: http.MethodPost, path: "/v1/installations/{id}/rollback", role: core.RoleAdmin, handle: s.rollbackRoute},
	}
}

func (s *Service) previewUpgradeRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in UpgradeRequest
	if len(req.Body) > 0 {
		if err := req.DecodeJSON(&in); err != nil {
			return nil, err
		}
	}
	p, err := s.PreviewUpgrade(ctx, req.Caller.WorkspaceID, req.Param("id"), in)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, p), nil
}

func (s *Service) upgradeRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in UpgradeRequest
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	inst, err := s.Upgrade(ctx, req.Caller, req.Param("id"), in)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, inst), nil
}

func (s *Service) rollbackRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	inst, err := s.Rollback(ctx, req.Caller, req.Param("id"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, inst), nil
}

// planRoute answers what installing a template version would allow now,
// with the digest an install must accept (?version= a range).
func (s *Service) planRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	p, err := s.Plan(ctx, req.Param("publisher")+"/"+req.Param("name"), req.Query.Get("version"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, p), nil
}

func (s *Service) installRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
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

func (s *Service) listInstallationsRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	list, err := s.Installations(ctx, req.Caller.WorkspaceID)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": list}), nil
}

func (s *Service) getInstallationRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	in, err := s.Installation(ctx, req.Caller.WorkspaceID, req.Param("id"))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, in), nil
}

// uninstallRoute removes an installation; ?connections=delete removes the
// connections it made too.
func (s *Service) uninstallRoute(ctx context.Context, req *core.Request) (*core.Response, error) {
	removeConns := false
	switch req.Query.Get("connections") {
	case "", "keep":
	case "delete":
		removeConns = true
	default:
		return nil, fieldError(core.EInvalid, "connections", `connections is "keep" (the default) or "delete"`)
	}
	if err := s.Uninstall(ctx, req.Caller, req.Param("id"), removeConns); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}
