package marketplace

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/httpapi/httpapitest"
	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/schemas/schemastest"
)

// Every route of the marketplace is in openapi.json with its role, and
// every operation the document says the marketplace serves is one.
func TestRoutesDocumented(t *testing.T) {
	var routes []schemastest.Route
	for _, r := range (&Service{}).routeTable() {
		routes = append(routes, schemastest.Route{Method: r.method, Path: r.path, Role: cmp.Or(string(r.role), "none")})
	}
	schemastest.CheckRoutes(t, "marketplace", routes)
}

// The routes through the server: a viewer of any workspace reads every
// listing; no key, no listing; bad parameters are 400 invalid.
func TestRoutesHTTP(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.catalog()
		ctx := context.Background()
		base := httpapitest.Serve(t, e.store, e.hasher, e.market.Routes())

		// A viewer of a workspace that has nothing to do with the
		// templates' publishers.
		other, err := e.store.CreateWorkspace(ctx, "tenant")
		if err != nil {
			t.Fatal(err)
		}
		viewerKey := httpapitest.Key(t, e.store, e.hasher, other.ID, core.RoleViewer)
		get := func(key, path string, out any) (int, string) {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var problem struct {
				Code string `json:"code"`
			}
			if resp.StatusCode != http.StatusOK {
				json.NewDecoder(resp.Body).Decode(&problem)
				return resp.StatusCode, problem.Code
			}
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, ""
		}

		var page struct {
			Data       []Listing `json:"data"`
			Sort       string    `json:"sort"`
			NextCursor *string   `json:"next_cursor"`
		}
		if status, code := get(viewerKey, "/v1/marketplace/templates?q=outage&category=devops", &page); status != 200 {
			t.Fatalf("search: %d %s", status, code)
		}
		if len(page.Data) != 1 || page.Data[0].Name != "beta/incident-kit" || page.Data[0].Latest != "1.1.0" || page.Sort != SortRelevance || page.NextCursor != nil {
			t.Errorf("search: %+v", page)
		}
		if status, code := get(viewerKey, "/v1/marketplace/templates?sort=name&limit=3", &page); status != 200 || len(page.Data) != 3 || page.NextCursor == nil {
			t.Fatalf("first page: %d %s %+v", status, code, page)
		}
		if status, code := get(viewerKey, "/v1/marketplace/templates?sort=name&limit=3&cursor="+url.QueryEscape(*page.NextCursor), &page); status != 200 ||
			len(page.Data) != 1 || page.Data[0].Name != "beta/ledger" || page.NextCursor != nil {
			t.Fatalf("second page: %d %s %+v", status, code, page)
		}
		var detail map[string]any
		if status, code := get(viewerKey, "/v1/marketplace/templates/beta/incident-kit", &detail); status != 200 {
			t.Fatalf("listing: %d %s", status, code)
		}
		for _, field := range []string{"name", "publisher", "title", "summary", "categories", "latest", "versions", "installs", "readme", "permission_summary", "permission_digest"} {
			if _, ok := detail[field]; !ok {
				t.Errorf("the listing has no %s: %v", field, detail)
			}
		}

		for path, want := range map[string]struct {
			status int
			code   string
		}{
			"/v1/marketplace/templates?sort=price":                    {400, core.EInvalid},
			"/v1/marketplace/templates?limit=0":                       {400, core.EInvalid},
			"/v1/marketplace/templates?limit=ten":                     {400, core.EInvalid},
			"/v1/marketplace/templates?cursor=nope":                   {400, core.EInvalid},
			"/v1/marketplace/templates?category=Dev+Ops":              {400, core.EInvalid},
			"/v1/marketplace/templates?q=a&q=b":                       {400, core.EInvalid},
			"/v1/marketplace/templates?q=" + strings.Repeat("x", 201): {400, core.EInvalid},
			"/v1/marketplace/templates/beta/nothing":                  {404, core.ENotFound},
			"/v1/marketplace/templates/Beta/ledger":                   {400, core.EInvalid},
		} {
			if status, code := get(viewerKey, path, &detail); status != want.status || code != want.code {
				t.Errorf("%s: %d %s, want %d %s", path, status, code, want.status, want.code)
			}
		}
		// Listings are public: no key reads them too (a key that is not
		// one is still refused).
		if status, _ := get("", "/v1/marketplace/templates", &page); status != http.StatusOK || len(page.Data) == 0 {
			t.Errorf("without a key: %d, %d listings", status, len(page.Data))
		}
		if status, _ := get("", "/v1/marketplace/templates/beta/ledger", &detail); status != http.StatusOK {
			t.Errorf("a listing without a key: %d", status)
		}
		if status, _ := get("rly_nope", "/v1/marketplace/templates", &page); status != http.StatusUnauthorized {
			t.Errorf("with a key that is not one: %d", status)
		}
	})
}

// The marketplace's response schemas name the fields it writes, and
// require those it always writes.
func TestResponseSchemasMatchTypes(t *testing.T) {
	schemastest.CheckSchemaTypes(t, map[string]any{
		"PermissionSummary":    template.Summary{},
		"InstallPlan":          Plan{},
		"TemplateLock":         Lock{},
		"TemplateInstallation": Installation{},
		"UpgradePreview":       UpgradePreview{},
		"Listing":              Listing{},
		"ListingDetail":        ListingDetail{},
		"ListingPage":          SearchPage{},
	}, nil)
}
