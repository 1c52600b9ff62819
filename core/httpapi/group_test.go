package httpapi

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
)

// Another package's routes are served with the server's own checks: a
// role, a key, a quota, problem+json for errors; a public one needs no
// key but is still charged, to the address.
func TestRouteGroups(t *testing.T) {
	var seen *core.Request
	routes := []core.Route{
		{Method: http.MethodPost, Path: "/v1/things/{kind}/{id}", Role: core.RoleDeveloper,
			Handle: func(_ context.Context, r *core.Request) (*core.Response, error) {
				seen = r
				var in struct{ N int }
				if err := r.DecodeJSON(&in); err != nil {
					return nil, err
				}
				if in.N < 0 {
					return nil, core.Errorf(core.EConflict, "negative")
				}
				return core.JSONResponse(http.StatusCreated, map[string]any{"kind": r.Param("kind"), "id": r.Param("id"), "n": in.N}), nil
			}},
		{Method: http.MethodGet, Path: "/v1/open/{name}", Handle: func(_ context.Context, r *core.Request) (*core.Response, error) {
			seen = r
			return &core.Response{Header: http.Header{"Content-Type": {"text/plain"}}, Body: strings.NewReader("hello " + r.Param("name"))}, nil
		}},
	}
	ts := newTestServer(t, func(c *Config) { c.Routes = routes })
	ws, keys := ts.workspace("acme")

	resp := ts.do(http.MethodPost, "/v1/things/box/b1?x=1", keys[core.RoleDeveloper], map[string]int{"N": 3}, "X-Test", "yes")
	if resp.Status != http.StatusCreated || !strings.Contains(string(resp.Body), `"kind":"box"`) || !strings.Contains(string(resp.Body), `"id":"b1"`) {
		t.Fatalf("keyed route: %d %s", resp.Status, resp.Body)
	}
	if seen.Caller == nil || seen.Caller.WorkspaceID != ws.ID || seen.Caller.Role != core.RoleDeveloper || seen.Query.Get("x") != "1" || seen.Header.Get("X-Test") != "yes" {
		t.Errorf("the handler saw %+v, caller %+v", seen, seen.Caller)
	}
	if !strings.HasPrefix(resp.Header.Get("RateLimit"), `"workspace"`) {
		t.Errorf("RateLimit %q, want the workspace's", resp.Header.Get("RateLimit"))
	}
	if r := ts.do(http.MethodPost, "/v1/things/box/b1", keys[core.RoleViewer], map[string]int{"N": 3}); r.Status != http.StatusForbidden {
		t.Errorf("viewer: %d %s", r.Status, r.Body)
	}
	if r := ts.do(http.MethodPost, "/v1/things/box/b1", "", map[string]int{"N": 3}); r.Status != http.StatusUnauthorized {
		t.Errorf("no key: %d %s", r.Status, r.Body)
	}
	if r := ts.do(http.MethodPost, "/v1/things/box/b1", keys[core.RoleAdmin], map[string]int{"N": -1}); r.Status != http.StatusConflict || r.problem(t).Code != core.EConflict {
		t.Errorf("an error: %d %s", r.Status, r.Body)
	}
	if r := ts.do(http.MethodPost, "/v1/things/box/b1", keys[core.RoleAdmin], map[string]any{"M": 1}); r.Status != http.StatusBadRequest {
		t.Errorf("an unknown field: %d %s", r.Status, r.Body)
	}

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/open/world", nil)
	req.Header.Set("Authorization", "Bearer rpt_not-an-api-key")
	raw, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	if raw.StatusCode != http.StatusOK || string(body) != "hello world" || raw.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("public route: %d %q", raw.StatusCode, body)
	}
	if seen.Caller != nil || seen.Header.Get("Authorization") != "Bearer rpt_not-an-api-key" {
		t.Errorf("the public handler saw caller %+v, Authorization %q", seen.Caller, seen.Header.Get("Authorization"))
	}
	if !strings.HasPrefix(raw.Header.Get("RateLimit"), `"address"`) {
		t.Errorf("a public route's RateLimit %q, want the address's", raw.Header.Get("RateLimit"))
	}
	// With an API key, a public route knows its caller.
	if r := ts.do(http.MethodGet, "/v1/open/you", keys[core.RoleViewer], nil); r.Status != http.StatusOK || seen.Caller == nil || seen.Caller.WorkspaceID != ws.ID {
		t.Errorf("public route with a key: %d, caller %+v", r.Status, seen.Caller)
	}
	if r := ts.do(http.MethodGet, "/v1/open/you", "rly_bad", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("public route with a bad API key: %d", r.Status)
	}
	found := 0
	for _, r := range ts.Server.Routes() {
		if r.Path == "/v1/things/{kind}/{id}" && r.Role == core.RoleDeveloper || r.Path == "/v1/open/{name}" && r.Role == "" {
			found++
		}
	}
	if found != 2 {
		t.Errorf("Routes() lists %d of the 2 group routes", found)
	}
}
