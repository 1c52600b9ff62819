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
}

// concrete fills a route's path parameters with a value that exists in the
// caller's workspace, so an allowed call succeeds rather than 404s.
func concrete(path string, keyID string) string {
	return strings.ReplaceAll(path, "{id}", keyID)
}

func TestRoleMatrix(t *testing.T) {
	ts := newTestServer(t, nil)
	ws, keys := ts.workspace("acme")

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
				// A key of its own to act on, so DELETE does not revoke the caller.
				target := ts.key(ws.ID, core.RoleViewer)
				id, _, _ := core.ParseKey(target)
				var body any
				if r.Method == http.MethodPost {
					body = map[string]string{"role": "viewer", "name": "made by matrix"}
				}
				resp := ts.do(r.Method, concrete(r.Path, id), keys[role], body)
				if role.Allows(want) {
					if resp.Status >= 300 {
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
			resp := ts.do(r.Method, concrete(r.Path, core.NewID()), "", nil)
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

func (s *countingStore) KeyForAuth(ctx context.Context, id string) (*core.APIKey, error) {
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
