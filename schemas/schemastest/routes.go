// Package schemastest checks a package's routes against the OpenAPI
// document, in that package's tests.
package schemastest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/schemas"
)

// Route is a route as the document describes it: Role is its
// x-relay-role ("none" for a public route, "publisher" for one that takes
// a publisher's token).
type Route struct {
	Method, Path, Role string
}

// CheckRoutes fails t unless every one of routes is in openapi.json with
// its role, and every operation the document says servedBy serves is one
// of routes.
func CheckRoutes(t *testing.T, servedBy string, routes []Route) {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(schemas.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range routes {
		op := r.Method + " " + r.Path
		served[op] = true
		raw, ok := doc.Paths[r.Path][strings.ToLower(r.Method)]
		if !ok {
			t.Errorf("%s is not in openapi.json", op)
			continue
		}
		var o struct {
			Role string `json:"x-relay-role"`
		}
		json.Unmarshal(raw, &o)
		if o.Role != r.Role {
			t.Errorf("%s: openapi.json says role %q, the route %q", op, o.Role, r.Role)
		}
	}
	for path, item := range doc.Paths {
		for method, raw := range item {
			var o struct {
				ServedBy string `json:"x-relay-served-by"`
			}
			json.Unmarshal(raw, &o)
			ours := method != "parameters" && o.ServedBy == servedBy
			if ours != served[strings.ToUpper(method)+" "+path] {
				t.Errorf("%s %s: openapi.json says served by %q; %s serves it: %v", strings.ToUpper(method), path, o.ServedBy, servedBy, !ours)
			}
		}
	}
}

// CheckRoleTable checks routes against roles, each route's role or token
// by "METHOD /path" ("none" for a public route, "publisher" for one that
// takes a publisher's token; both have no core role), then against the
// document (CheckRoutes).
func CheckRoleTable(t *testing.T, servedBy string, routes []core.Route, roles map[string]string) {
	t.Helper()
	var out []Route
	for _, r := range routes {
		role := roles[r.Method+" "+r.Path]
		if role == "" {
			t.Errorf("%s %s: a route this test does not know", r.Method, r.Path)
		}
		if (role == "none" || role == "publisher") != (r.Role == "") || (r.Role != "" && string(r.Role) != role) {
			t.Errorf("%s %s: role %q, want %q", r.Method, r.Path, r.Role, role)
		}
		out = append(out, Route{Method: r.Method, Path: r.Path, Role: role})
	}
	CheckRoutes(t, servedBy, out)
}
