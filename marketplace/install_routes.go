package marketplace

import (
	"context"
	"net/http"

	"github.com/relayhq/relay/core"
)

// installationRoutes are the endpoints of a workspace's installations:
// an admin installs and uninstalls; any key of the workspace reads.
func (s *Service) installationRoutes() []core.Route {
	return []core.Route{
		{Method: http.MethodGet, Path: "/v1/marketplace/templates/{publisher}/{name}/plan", Role: core.RoleViewer, Handle: s.planRoute},
		{Method: http.MethodPost, Path: "/v1/installations", Role: core.RoleAdmin, Handle: s.installRoute},
		{Method: http.MethodGet, Path: "/v1/installations", Role: core.RoleViewer, Handle: s.listInstallationsRoute},
		{Method: http.MethodGet, Path: "/v1/installations/{id}", Role: core.RoleViewer, Handle: s.getInstallationRoute},
		{Method: http.MethodDelete, Path: "/v1/installations/{id}", Role: core.RoleAdmin, Handle: s.uninstallRoute},
		{Method: http.MethodPost, Path: "/v1/installations/{id}/upgrade/preview", Role: core.RoleAdmin, Handle: s.previewUpgradeRoute},
		{Method: http.MethodPost, Path: "/v1/installations/{id}/upgrade", Role: core.RoleAdmin, Handle: s.upgradeRoute},
		{Method: http.MethodPost, Path: "/v1/installations/{id}/rollback", Role: core.RoleAdmin, Handle: s.rollbackRoute},
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
