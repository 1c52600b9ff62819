package main

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/registrytest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// TestMarketplaceFromAnotherRegistry runs two servers: A, the central
// registry, where acme publishes the vault connector and the vault-kit
// template on it; and B, pinned to A (--registry-url, --registry-key),
// whose marketplace installs the template from A. A download of the
// template changed on the way is refused and leaves nothing; the plan,
// the install with consent and a preset's run then work as on A itself;
// connector installs and template reads each refuse the other kind;
// yanks at A steer B's plans; and what B keeps runs with A gone.
func TestMarketplaceFromAnotherRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs servers and connectors")
	}
	vault := vaultPackages(t, "1.0.0")["1.0.0"]
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			aCfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			bCfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			if db.Name != "sqlite" {
				aCfg.DatabaseURL, bCfg.DatabaseURL = db.URL(t), db.URL(t)
			}
			a, bannerA := startMain(t, aCfg, io.Discard)
			ha := &httpClient{t: t, base: a.URL()}
			pub, priv, _ := minisign.GenerateKey(nil)
			var reg struct{ Token string }
			ha.json("POST", "/v1/registry/publishers", keyRE.FindString(bannerA),
				map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
			ha.publish(reg.Token, vault, priv)
			ha.publish(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit("1.0.0", "~1.0.0")), priv)

			link := registrytest.NewInterceptor(t, a.URL())
			bCfg.RegistryURL, bCfg.RegistryKey = link.URL, relaypkg.PublicKeyLine(a.registry.PublicKey())
			b, bannerB := startMain(t, bCfg, io.Discard)
			hb := &httpClient{t: t, base: b.URL()}
			admin := keyRE.FindString(bannerB)
			mirrored := func(pkg string) int {
				t.Helper()
				var n int
				if err := b.store.DB().Get(&n, b.store.DB().Rebind(`SELECT COUNT(*) FROM registry_mirror WHERE package = ?`), pkg); err != nil {
					t.Fatal(err)
				}
				return n
			}

			// One byte of the template changed on the way: refused, and
			// nothing of it kept.
			const kitDownload = "/v1/registry/packages/acme/vault-kit/versions/1.0.0/download"
			link.Set(func(path string, body []byte) []byte {
				if path == kitDownload {
					body = bytes.Clone(body)
					body[len(body)/2] ^= 1
				}
				return body
			})
			var problem struct{ Code, Detail string }
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan", admin, nil, 422, &problem)
			if problem.Code != "package_tampered" {
				t.Fatalf("a changed download of the template: %+v", problem)
			}
			if n := mirrored("acme/vault-kit"); n != 0 {
				t.Fatalf("B keeps %d rows of the template it refused", n)
			}
			link.Set(nil)

			// B's tenants find A's templates: B's marketplace reads A's
			// listings, as they are there.
			var found struct {
				Data []struct{ Name, Latest string }
			}
			hb.json("GET", "/v1/marketplace/templates?q=vault", admin, nil, 200, &found)
			if len(found.Data) != 1 || found.Data[0].Name != "acme/vault-kit" || found.Data[0].Latest != "1.0.0" {
				t.Fatalf("B's search: %+v", found.Data)
			}
			var listing struct {
				Name             string `json:"name"`
				PermissionDigest string `json:"permission_digest"`
			}
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit", "", nil, 200, &listing)
			if listing.Name != "acme/vault-kit" || len(listing.PermissionDigest) != 64 {
				t.Fatalf("B's listing: %+v", listing)
			}
			hb.json("GET", "/v1/marketplace/templates?sort=price", admin, nil, 400, nil) // A's refusal, passed on

			var plan struct {
				Version           string `json:"version"`
				PermissionDigest  string `json:"permission_digest"`
				PermissionSummary struct {
					Connectors []struct{ Package, Version string }
				} `json:"permission_summary"`
			}
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan", admin, nil, 200, &plan)
			if plan.Version != "1.0.0" || len(plan.PermissionDigest) != 64 || len(plan.PermissionSummary.Connectors) != 1 ||
				plan.PermissionSummary.Connectors[0].Package != "acme/vault" || plan.PermissionSummary.Connectors[0].Version != "1.0.0" {
				t.Fatalf("plan: %+v", plan)
			}
			var inst struct{ ID, Template, Version string }
			hb.json("POST", "/v1/installations", admin, map[string]any{"template": "acme/vault-kit", "name": "kit",
				"connections": map[string]any{"main": map[string]any{"secrets": map[string]string{"token": "t0ken"}}},
				"accept":      plan.PermissionDigest}, 201, &inst)
			if inst.Template != "acme/vault-kit" || inst.Version != "1.0.0" {
				t.Fatalf("installed %+v", inst)
			}
			whoami := func() (status, templateVersion string) {
				t.Helper()
				var run struct {
					Status, Package string
					Preset          struct {
						TemplateVersion string `json:"template_version"`
					}
				}
				hb.json("POST", "/v1/actions/kit.whoami/execute", admin, map[string]any{"params": map[string]any{}}, 200, &run)
				if run.Package != "acme/vault" {
					t.Fatalf("kit.whoami ran %+v", run)
				}
				return run.Status, run.Preset.TemplateVersion
			}
			if status, tv := whoami(); status != "succeeded" || tv != "1.0.0" {
				t.Fatalf("kit.whoami: %s, template %s", status, tv)
			}
			// Downloaded once: a second plan and install read what B keeps.
			downloads := link.Count(kitDownload)
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan?version=1.0.0", admin, nil, 200, &plan)
			if n := link.Count(kitDownload); n != downloads || mirrored("acme/vault-kit") != 1 {
				t.Fatalf("the template was downloaded %d more times; B keeps %d rows of it", n-downloads, mirrored("acme/vault-kit"))
			}

			// Each kind is only itself: no connector install of a
			// template, no template plan of a connector.
			hb.json("POST", "/v1/connectors/install", admin, map[string]string{"package": "acme/vault-kit"}, 404, &problem)
			if problem.Code != "not_found" {
				t.Fatalf("a connector install of the template: %+v", problem)
			}
			hb.json("GET", "/v1/marketplace/templates/acme/vault/plan", admin, nil, 404, &problem)
			if problem.Code != "not_found" {
				t.Fatalf("a template plan of the connector: %+v", problem)
			}

			// Yanks at A: a plan with no range skips the yanked version,
			// and the installation runs on.
			ha.publish(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit("1.1.0", "~1.0.0")), priv)
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan", admin, nil, 200, &plan)
			if plan.Version != "1.1.0" {
				t.Fatalf("the plan after 1.1.0 was published picks %s", plan.Version)
			}
			ha.json("POST", "/v1/registry/packages/acme/vault-kit/versions/1.1.0/yank", reg.Token, map[string]string{"reason": "breaks whoami"}, 204, nil)
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan", admin, nil, 200, &plan)
			if plan.Version != "1.0.0" {
				t.Fatalf("the plan after 1.1.0 was yanked picks %s", plan.Version)
			}
			ha.json("POST", "/v1/registry/packages/acme/vault-kit/versions/1.0.0/yank", reg.Token, map[string]string{"reason": "retired"}, 204, nil)
			hb.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan", admin, nil, 404, &problem)
			if problem.Code != "not_found" {
				t.Fatalf("a plan with every version yanked: %+v", problem)
			}
			if status, tv := whoami(); status != "succeeded" || tv != "1.0.0" {
				t.Fatalf("kit.whoami after the yanks: %s, template %s", status, tv)
			}

			// A gone, B started again: the installation runs from what B
			// keeps.
			link.Close()
			b.Close()
			b, _ = startMain(t, bCfg, io.Discard)
			hb.base = b.URL()
			if status, tv := whoami(); status != "succeeded" || tv != "1.0.0" {
				t.Fatalf("kit.whoami with the registry gone: %s, template %s", status, tv)
			}
		})
	}
}
