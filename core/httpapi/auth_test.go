package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/core"
)

// The role matrix, written out by hand so that it checks the route table
// rather than repeating it: the least role each /v1 route needs.
var wantRoles = map[string]core.Role{
	"GET /v1/workspace":    core.RoleViewer,
	"GET /v1/keys":         core.RoleAdmin,
	"POST /v1/keys":        core.RoleAdmin,
	"GET /v1/keys/{id}":    core.RoleAdmin,
	"DELETE /v1/keys/{id}": core.RoleAdmin,

	"GET /v1/connectors":            core.RoleViewer,
	"GET /v1/connections":           core.RoleViewer,
	"POST /v1/connections":          core.RoleAdmin,
	"GET /v1/connections/{id}":      core.RoleViewer,
	"PATCH /v1/connections/{id}":    core.RoleAdmin,
	"DELETE /v1/connections/{id}":   core.RoleAdmin,
	"GET /v1/actions":               core.RoleViewer,
	"GET /v1/actions/{id}":          core.RoleViewer,
	"POST /v1/actions/{id}/preview": core.RoleDeveloper,
	"POST /v1/actions/{id}/execute": core.RoleDeveloper,
	"GET /v1/runs":                  core.RoleViewer,
	"GET /v1/runs/{id}":             core.RoleViewer,
	"GET /v1/runs/{id}/events":      core.RoleViewer,
	"POST /v1/runs/{id}/retry":      core.RoleDeveloper,
	"GET /v1/audit":                 core.RoleAdmin,

	"PATCH /v1/workspace":               core.RoleAdmin,
	"DELETE /v1/workspace":              core.RoleAdmin,
	"POST /v1/workspace/delete/preview": core.RoleAdmin,
	"POST /v1/workspace/export":         core.RoleAdmin,
	"POST /mcp":                         core.RoleViewer,
}

// targets are resources of the caller's workspace for a route to act on.
type targets struct {
	keyID, connectionID, connectionName, runID string
	failedRunID                                string // for a retry
}

// concrete fills a route's path parameters with a resource that exists in
// the caller's workspace, so an allowed call succeeds rather than 404s.
func concrete(path string, tg targets) string {
	switch {
	case strings.HasPrefix(path, "/v1/keys/"):
		return strings.ReplaceAll(path, "{id}", tg.keyID)
	case strings.HasPrefix(path, "/v1/connections/"):
		return strings.ReplaceAll(path, "{id}", tg.connectionID)
	case strings.HasPrefix(path, "/v1/actions/"):
		return strings.ReplaceAll(path, "{id}", "echo.echo")
	case strings.HasSuffix(path, "/retry"):
		return strings.ReplaceAll(path, "{id}", tg.failedRunID)
	case strings.HasPrefix(path, "/v1/runs/"):
		return strings.ReplaceAll(path, "{id}", tg.runID)
	}
	return path
}

// bodyFor is a valid body for a route's request.
func bodyFor(method, path string, tg targets) any {
	switch {
	case method == http.MethodPost && path == "/v1/keys":
		return map[string]string{"role": "viewer", "name": "made by matrix"}
	case method == http.MethodPost && path == "/v1/connections":
		return map[string]any{"connector": "echo", "name": "m-" + strings.ToLower(core.NewID()[16:])}
	case method == http.MethodPatch && path == "/v1/workspace":
		return map[string]any{"run_retention_days": 30}
	case method == http.MethodPatch:
		return map[string]any{"config": map[string]any{}}
	case strings.HasSuffix(path, "/retry"):
		// The run fails again: async, the call's answer is its acceptance.
		return map[string]any{"mode": "async"}
	case path == "/mcp":
		return map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
	case strings.HasSuffix(path, "/preview"), strings.HasSuffix(path, "/execute"):
		return map[string]any{"params": map[string]any{"x": 1}, "connection": tg.connectionName}
	}
	return nil
}

func TestRoleMatrix(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	ws, keys := ts.workspace("acme")
	run := ts.connectEcho(keys[core.RoleAdmin], "shared")
	failed := ts.failedRun(keys[core.RoleAdmin])

	covered := map[string]bool{}
	for _, r := range ts.Server.Routes() {
		if r.Role == "" {
			continue
		}
		name := r.Method + " " + r.Path
		want, ok := wantRoles[name]
		if !ok {
			t.Errorf("route %s is missing from the role matrix", name)
			continue
		}
		covered[name] = true
		if r.Role != want {
			t.Errorf("route %s needs %s, want %s", name, r.Role, want)
		}
		for _, role := range core.Roles {
			t.Run(name+" as "+string(role), func(t *testing.T) {
				ts := ts.with(t)
				// Resources of its own to act on, so a DELETE does not
				// take away what other subtests use.
				keyID, _, _ := core.ParseKey(ts.key(ws.ID, core.RoleViewer))
				name := "c-" + strings.ToLower(core.NewID()[16:])
				tg := targets{keyID: keyID, connectionID: ts.createEcho(keys[core.RoleAdmin], name), connectionName: name, runID: run, failedRunID: failed}
				// An MCP client accepts both of the Streamable HTTP transport's
				// answers; the other routes take the header as it is.
				resp := ts.do(r.Method, concrete(r.Path, tg), keys[role], bodyFor(r.Method, r.Path, tg), "Accept", "application/json, text/event-stream")
				// An erasure without its confirm token is refused after
				// the role check, with 428: the workspace stays for the
				// other subtests.
				erase := r.Method == http.MethodDelete && r.Path == "/v1/workspace" && resp.Status == http.StatusPreconditionRequired
				if role.Allows(want) {
					if resp.Status >= 300 && !erase {
						t.Fatalf("%s may call it but got %d: %s", role, resp.Status, resp.Body)
					}
				} else {
					if resp.Status != http.StatusForbidden {
						t.Fatalf("%s must be refused with 403, got %d: %s", role, resp.Status, resp.Body)
					}
					if p := resp.problem(t); p.Code != core.EForbidden {
						t.Fatalf("code %q, want %q", p.Code, core.EForbidden)
					}
				}
			})
		}
		t.Run(name+" without a key", func(t *testing.T) {
			ts := ts.with(t)
			resp := ts.do(r.Method, concrete(r.Path, targets{keyID: core.NewID(), connectionID: core.NewID(), runID: core.NewID(), failedRunID: core.NewID()}), "", nil)
			if resp.Status != http.StatusUnauthorized || resp.problem(t).Code != core.EUnauthenticated {
				t.Fatalf("got %d %s, want 401 unauthenticated", resp.Status, resp.Body)
			}
		})
	}
	for name := range wantRoles {
		if !covered[name] {
			t.Errorf("the role matrix names %s, which the server does not serve", name)
		}
	}
}

func TestAuthenticationRefusals(t *testing.T) {
	ts := newTestServer(t, nil)
	ws, keys := ts.workspace("acme")
	admin := keys[core.RoleAdmin]
	id, _, _ := core.ParseKey(admin)
	otherSecret, _ := core.NewKeyToken(id) // right id, wrong secret
	tests := map[string]string{
		"no header":        "",
		"basic scheme":     "Basic " + admin,
		"bare key":         admin,
		"malformed":        "Bearer rly_nope",
		"unknown id":       "Bearer " + ts.keyForUnknownID(),
		"wrong secret":     "Bearer " + otherSecret,
		"trailing garbage": "Bearer " + admin + "x",
	}
	for name, header := range tests {
		t.Run(name, func(t *testing.T) {
			resp := ts.with(t).do(http.MethodGet, "/v1/workspace", "", nil, "Authorization", header)
			if resp.Status != http.StatusUnauthorized {
				t.Fatalf("got %d, want 401", resp.Status)
			}
			if p := resp.problem(t); p.Code != core.EUnauthenticated {
				t.Fatalf("code %q", p.Code)
			}
		})
	}
	// The scheme is case-insensitive (RFC 9110).
	if resp := ts.do(http.MethodGet, "/v1/workspace", "", nil, "Authorization", "bearer "+admin); resp.Status != http.StatusOK {
		t.Fatalf("lower-case bearer: %d %s", resp.Status, resp.Body)
	}
	_ = ws
}

func (ts *testServer) keyForUnknownID() string {
	token, _ := core.NewKeyToken(core.NewID())
	return token
}

func TestRevokedKeyIsRefusedAtOnce(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	created := ts.do(http.MethodPost, "/v1/keys", keys[core.RoleAdmin], map[string]string{"role": "developer", "name": "ci"})
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	created.decode(t, &k)
	if resp := ts.do(http.MethodGet, "/v1/workspace", k.Key, nil); resp.Status != http.StatusOK {
		t.Fatalf("new key: %d %s", resp.Status, resp.Body)
	}
	if resp := ts.do(http.MethodDelete, "/v1/keys/"+k.ID, keys[core.RoleAdmin], nil); resp.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", resp.Status, resp.Body)
	}
	if resp := ts.do(http.MethodGet, "/v1/workspace", k.Key, nil); resp.Status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d %s, want 401", resp.Status, resp.Body)
	}
	if resp := ts.do(http.MethodDelete, "/v1/keys/"+k.ID, keys[core.RoleAdmin], nil); resp.Status != http.StatusNotFound {
		t.Fatalf("revoking twice: %d, want 404", resp.Status)
	}
}

func TestWorkspaceIsolation(t *testing.T) {
	ts := newTestServer(t, nil)
	_, a := ts.workspace("team-a")
	wsB, b := ts.workspace("team-b")
	bKeyID, _, _ := core.ParseKey(b[core.RoleViewer])

	for _, path := range []string{"/v1/keys/" + bKeyID} {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			resp := ts.do(method, path, a[core.RoleAdmin], nil)
			if resp.Status != http.StatusNotFound || resp.problem(t).Code != core.ENotFound {
				t.Errorf("%s %s with a key of A: %d %s, want 404", method, path, resp.Status, resp.Body)
			}
		}
	}
	// B's key still works: A's DELETE touched nothing.
	if resp := ts.do(http.MethodGet, "/v1/workspace", b[core.RoleViewer], nil); resp.Status != http.StatusOK {
		t.Fatalf("B's key after A's attempts: %d", resp.Status)
	}
	var list struct {
		Data []core.APIKey `json:"data"`
	}
	ts.do(http.MethodGet, "/v1/keys", a[core.RoleAdmin], nil).decode(t, &list)
	if len(list.Data) != len(core.Roles) {
		t.Fatalf("A lists %d keys, want its own %d", len(list.Data), len(core.Roles))
	}
	for _, k := range list.Data {
		if k.WorkspaceID == wsB.ID {
			t.Fatalf("A's list shows B's key %s", k.ID)
		}
	}
	var ws workspaceView
	ts.do(http.MethodGet, "/v1/workspace", a[core.RoleViewer], nil).decode(t, &ws)
	if ws.Name != "team-a" {
		t.Fatalf("A's key sees workspace %q", ws.Name)
	}
}

// countingStore counts the key lookups that reach the store.
type countingStore struct {
	core.Store
	lookups atomic.Int64
}

func (s *countingStore) KeyForAuth(ctx context.Context, id string) (*core.APIKey, *core.Workspace, error) {
	s.lookups.Add(1)
	return s.Store.KeyForAuth(ctx, id)
}

func TestMalformedKeyNeverReachesTheStore(t *testing.T) {
	var counting *countingStore
	ts := newTestServer(t, func(c *Config) {
		counting = &countingStore{Store: c.Store}
		c.Store = counting
	})
	_, keys := ts.workspace("acme")
	good := keys[core.RoleViewer]
	for _, bad := range []string{"rly_", "rly_x_y", good[:len(good)-1], strings.ToUpper(good), good + "=", "sk_live_abc"} {
		if resp := ts.do(http.MethodGet, "/v1/workspace", bad, nil); resp.Status != http.StatusUnauthorized {
			t.Fatalf("key %q: %d, want 401", bad, resp.Status)
		}
	}
	if n := counting.lookups.Load(); n != 0 {
		t.Fatalf("malformed keys caused %d store lookups, want 0", n)
	}
	if resp := ts.do(http.MethodGet, "/v1/workspace", good, nil); resp.Status != http.StatusOK || counting.lookups.Load() != 1 {
		t.Fatalf("a good key: %d after %d lookups, want 200 after 1", resp.Status, counting.lookups.Load())
	}
}

// A mutation refused for the key's role is on the audit record.
func TestDeniedMutationIsAudited(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	if resp := ts.do(http.MethodPost, "/v1/keys", keys[core.RoleViewer], map[string]string{"role": "admin"}); resp.Status != http.StatusForbidden {
		t.Fatalf("viewer creating a key: %d", resp.Status)
	}
	var audit struct {
		Data []core.AuditRecord `json:"data"`
	}
	ts.do(http.MethodGet, "/v1/audit", keys[core.RoleAdmin], nil).decode(t, &audit)
	for _, r := range audit.Data {
		if r.Outcome == "denied" && r.Action == "post /v1/keys" && r.Role == "viewer" {
			return
		}
	}
	t.Fatalf("no denied record in %+v", audit.Data)
}
