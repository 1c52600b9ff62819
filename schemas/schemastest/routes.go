// Package schemastest checks a package's routes against the OpenAPI
// document, in that package's tests.
package schemastest

import (
	"encoding/json"
	"strings"
	"testing"

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
