package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// vaultKit is a template on the testdata vault connector: whoami (its
// keys action, nothing fixed), purge (its destructive delete_item, the
// item's id from the input) and nap (its slow action, the time fixed).
func vaultKit(version, vaultRange string) []byte {
	return []byte(fmt.Sprintf(`{
  "name": "acme/vault-kit", "version": %q, "title": "Vault kit", "summary": "Everyday vault chores.",
  "categories": ["security"],
  "connectors": [{"package": "acme/vault", "version": %q}],
  "connections": [{"name": "main", "connector": "vault", "title": "Your vault",
    "fields": [{"field": "token", "label": "API token"}]}],
  "actions": [
    {"name": "whoami", "title": "Who am I", "connection": "main", "action": "keys",
     "input_schema": {"type": "object", "properties": {"fail_until": {"type": "string"}}, "additionalProperties": false},
     "fields": {"fail_until": "/fail_until"}},
    {"name": "purge", "title": "Purge an item", "connection": "main", "action": "delete_item",
     "input_schema": {"type": "object", "properties": {"item": {"type": "string", "minLength": 1}}, "required": ["item"], "additionalProperties": false},
     "fields": {"item": "/id"}},
    {"name": "nap", "title": "Nap", "connection": "main", "action": "slow", "params": {"ms": 5},
     "input_schema": {"type": "object", "properties": {}, "additionalProperties": false}}
  ]
}`, version, vaultRange))
}

func packTemplate(t testing.TB, name string, doc []byte) []byte {
	t.Helper()
	data, _, err := relaypkg.PackBytes(name, map[string][]byte{relaypkg.TemplatePath: doc, relaypkg.ReadmePath: []byte("# kit")})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMarketplaceInstall publishes a connector and a template on it,
// installs the template with consent (a wrong digest is refused with the
// summary to show again), runs its presets as the workspace's actions
// (preview, confirm, execute, idempotency, runs that name the template
// version), keeps them from other workspaces and lesser roles, and
// uninstalls it, leaving its runs.
func TestMarketplaceInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs connectors")
	}
	pkgs := vaultPackages(t, "1.0.0", "1.1.0")
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			m, banner := startMain(t, cfg, io.Discard)
			h := &httpClient{t: t, base: m.URL()}
			admin := keyRE.FindString(banner)
			newKey := func(args ...string) string {
				out, err := relay(t, cfg, append([]string{"keys", "create"}, args...)...)
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(out)
			}
			developer, viewer := newKey("--workspace", core.DefaultWorkspace, "--role", "developer"), newKey("--workspace", core.DefaultWorkspace, "--role", "viewer")
			if _, err := relay(t, cfg, "workspaces", "create", "beta"); err != nil {
				t.Fatal(err)
			}
			adminB := newKey("--workspace", "beta", "--role", "admin")

			pub, priv, _ := minisign.GenerateKey(nil)
			var reg struct{ Token string }
			h.json("POST", "/v1/registry/publishers", admin, map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
			h.publish(reg.Token, pkgs["1.0.0"], priv)

			// Refused at publish: a range nothing fits, and a key the
			// publisher does not have.
			problem := h.publishStatus(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit("0.9.0", "^2.0")), priv)
			if problem.Code != "template_invalid" || !strings.Contains(problem.Detail, "acme/vault") {
				t.Fatalf("a template on no version: %+v", problem)
			}
			// A preset weaker than its action: delete_item is destructive.
			weak := strings.Replace(string(vaultKit("0.9.2", "^1.0")), `"action": "delete_item",`, `"action": "delete_item", "side_effect": "none",`, 1)
			if problem := h.publishStatus(reg.Token, packTemplate(t, "acme/vault-kit", []byte(weak)), priv); problem.Code != "template_invalid" ||
				!strings.Contains(problem.Detail, "/actions/1/side_effect") {
				t.Fatalf("a preset weaker than its action: %+v", problem)
			}
			_, stranger, _ := minisign.GenerateKey(nil)
			if problem := h.publishStatus(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit("0.9.1", "^1.0")), stranger); problem.Code != "signer_unknown" {
				t.Fatalf("a template signed by a stranger: %+v", problem)
			}
			h.publish(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit("1.0.0", "~1.0.0")), priv)

			// The plan: what installing allows, and the digest to accept.
			var plan struct {
				Version           string `json:"version"`
				PermissionDigest  string `json:"permission_digest"`
				PermissionSummary struct {
					Connectors []struct{ Package, Version string }
					Secrets    []struct{ Connection, Field string }
					Presets    []struct {
						Name                 string `json:"name"`
						SideEffect           string `json:"side_effect"`
						RequiresConfirmation bool   `json:"requires_confirmation"`
					}
				} `json:"permission_summary"`
			}
			h.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan?version=^1", viewer, nil, 200, &plan)
			if plan.Version != "1.0.0" || len(plan.PermissionDigest) != 64 || len(plan.PermissionSummary.Connectors) != 1 ||
				plan.PermissionSummary.Connectors[0].Version != "1.0.0" || len(plan.PermissionSummary.Secrets) != 1 {
				t.Fatalf("plan: %+v", plan)
			}

			install := map[string]any{"template": "acme/vault-kit", "version": "^1", "name": "kit",
				"connections": map[string]any{"main": map[string]any{"secrets": map[string]string{"token": "t0ken"}}},
				"accept":      strings.Repeat("0", 64)}
			h.json("POST", "/v1/installations", developer, install, 403, nil)
			var mismatch struct {
				Code              string          `json:"code"`
				PermissionDigest  string          `json:"permission_digest"`
				PermissionSummary json.RawMessage `json:"permission_summary"`
			}
			h.json("POST", "/v1/installations", admin, install, 409, &mismatch)
			if mismatch.Code != "consent_mismatch" || mismatch.PermissionDigest != plan.PermissionDigest || len(mismatch.PermissionSummary) == 0 {
				t.Fatalf("a wrong accept: %+v", mismatch)
			}
			install["accept"] = plan.PermissionDigest
			var inst struct {
				ID, Name, Template, Version string
				Presets                     []string
				Lock                        struct {
					SHA256, Signer string
					Connectors     []struct{ Package, Version, SHA256, Signer string }
					Connections    map[string]string
				}
			}
			h.json("POST", "/v1/installations", admin, install, 201, &inst)
			if inst.Name != "kit" || inst.Version != "1.0.0" || strings.Join(inst.Presets, ",") != "kit.nap,kit.purge,kit.whoami" ||
				len(inst.Lock.Connectors) != 1 || inst.Lock.Connectors[0].SHA256 == "" || inst.Lock.Connections["main"] != "kit-main" {
				t.Fatalf("installed: %+v", inst)
			}
			h.json("POST", "/v1/installations", admin, install, 409, nil) // the name is taken
			// The workspace holds the template and its connector's package
			// from now (what a monthly price bills).
			holdings := func() map[string]bool {
				t.Helper()
				var rows []struct {
					Listing string `db:"listing"`
					Open    bool   `db:"open"`
				}
				db := m.store.DB()
				if err := db.Select(&rows, db.Rebind(`SELECT listing, ended_at IS NULL AS open FROM billing_holdings
					WHERE holder = ? ORDER BY listing`), "installation:"+inst.ID); err != nil {
					t.Fatal(err)
				}
				out := map[string]bool{}
				for _, r := range rows {
					out[r.Listing] = r.Open
				}
				return out
			}
			if got := holdings(); len(got) != 2 || !got["acme/vault-kit"] || !got[inst.Lock.Connectors[0].Package] {
				t.Fatalf("holdings after installing: %v", got)
			}

			// The presets are the workspace's actions, with their own
			// schemas, never weaker than their actions.
			var actions struct {
				Data []struct {
					ID                   string `json:"id"`
					SideEffect           string `json:"side_effect"`
					RequiresConfirmation bool   `json:"requires_confirmation"`
					InputSchema          json.RawMessage
					Preset               *struct{ Action string }
				}
			}
			h.json("GET", "/v1/actions", viewer, nil, 200, &actions)
			presets := map[string]bool{}
			for _, a := range actions.Data {
				if a.Preset != nil {
					presets[a.ID] = a.RequiresConfirmation
				}
			}
			if len(presets) != 3 || !presets["kit.purge"] || presets["kit.whoami"] {
				t.Fatalf("presets among the actions: %v", presets)
			}

			// Execute as a developer: the run names the preset, its
			// template version and the connector version.
			var run struct {
				ID, Action, Status, Version, Package string
				Preset                               struct {
					Installation    string `json:"installation"`
					Template        string `json:"template"`
					TemplateVersion string `json:"template_version"`
					Action          string `json:"action"`
				}
				Output map[string]any
			}
			h.json("POST", "/v1/actions/kit.whoami/execute", developer, map[string]any{"params": map[string]any{}}, 200, &run)
			if run.Status != "succeeded" || run.Action != "kit.whoami" || run.Version != "1.0.0" || run.Package != "acme/vault" ||
				run.Preset.Template != "acme/vault-kit" || run.Preset.TemplateVersion != "1.0.0" || run.Preset.Action != "vault.keys" ||
				run.Preset.Installation != inst.ID {
				t.Fatalf("a preset's run: %+v", run)
			}
			h.json("POST", "/v1/actions/kit.whoami/execute", developer, map[string]any{"params": map[string]any{"extra": 1}}, 422, nil)
			// A retry of a preset's run is a run of the preset too.
			until := time.Now().Add(3 * time.Second) // the first call fails however slow the machine
			var failed struct{ Run struct{ ID, Status string } }
			h.json("POST", "/v1/actions/kit.whoami/execute", developer, map[string]any{"params": map[string]any{"fail_until": until.UTC().Format(time.RFC3339Nano)}}, 502, &failed)
			time.Sleep(time.Until(until) + 100*time.Millisecond)
			var retry struct {
				Action string `json:"action"`
				Preset *struct {
					Action string `json:"action"`
				}
			}
			h.json("POST", "/v1/runs/"+failed.Run.ID+"/retry", developer, nil, 200, &retry)
			if retry.Action != "kit.whoami" || retry.Preset == nil || retry.Preset.Action != "vault.keys" {
				t.Fatalf("a preset run's retry: %+v", retry)
			}
			h.json("POST", "/v1/actions/kit.whoami/execute", viewer, map[string]any{"params": map[string]any{}}, 403, nil)

			// A destructive preset needs its preview's token; a retry with
			// the key replays.
			purge := map[string]any{"params": map[string]any{"item": "a1"}}
			h.json("POST", "/v1/actions/kit.purge/execute", developer, purge, 428, nil)
			var preview struct {
				Preview      map[string]any `json:"preview"`
				ConfirmToken string         `json:"confirm_token"`
			}
			h.json("POST", "/v1/actions/kit.purge/preview", developer, purge, 200, &preview)
			if preview.Preview["would_delete"] != "a1" {
				t.Fatalf("preview: %+v", preview)
			}
			purge["confirm_token"] = preview.ConfirmToken
			first := h.executeKeyed("kit.purge", developer, "purge-a1", purge)
			again := h.executeKeyed("kit.purge", developer, "purge-a1", purge)
			if first.Status != "succeeded" || first.ID != again.ID || first.Output["deleted"] != "a1" {
				t.Fatalf("purge: %+v, again %+v", first, again)
			}
			h.json("POST", "/v1/actions/kit.nap/execute", developer, map[string]any{"params": map[string]any{}}, 200, &run)
			if run.Output["slept_ms"] != float64(5) {
				t.Fatalf("nap: %+v", run)
			}

			upgradeAndRollBack(t, h, admin, developer, viewer, reg.Token, priv, pkgs["1.1.0"], inst.ID)

			// Another workspace sees none of it.
			h.json("GET", "/v1/installations/"+inst.ID, adminB, nil, 404, nil)
			h.json("DELETE", "/v1/installations/"+inst.ID, adminB, nil, 404, nil)
			for _, path := range []string{"/upgrade/preview", "/upgrade", "/rollback"} {
				h.json("POST", "/v1/installations/"+inst.ID+path, adminB, map[string]any{"accept": "x"}, 404, nil)
				h.json("POST", "/v1/installations/kit"+path, adminB, map[string]any{"accept": "x"}, 404, nil)
			}
			h.json("POST", "/v1/actions/kit.whoami/execute", adminB, map[string]any{"params": map[string]any{}}, 404, nil)
			var list struct{ Data []json.RawMessage }
			h.json("GET", "/v1/installations", adminB, nil, 200, &list)
			if len(list.Data) != 0 {
				t.Fatalf("B's installations: %d", len(list.Data))
			}
			h.json("GET", "/v1/installations", viewer, nil, 200, &list)
			if len(list.Data) != 1 {
				t.Fatalf("A's installations: %d", len(list.Data))
			}

			// Uninstall (with its connections): the presets go, the runs
			// stay.
			h.json("DELETE", "/v1/installations/kit?connections=delete", developer, nil, 403, nil)
			h.json("DELETE", "/v1/installations/kit?connections=delete", admin, nil, 204, nil)
			if got := holdings(); len(got) != 2 || got["acme/vault-kit"] || got[inst.Lock.Connectors[0].Package] {
				t.Fatalf("holdings after uninstalling: %v", got)
			}
			h.json("POST", "/v1/actions/kit.whoami/execute", developer, map[string]any{"params": map[string]any{}}, 404, nil)
			h.json("GET", "/v1/runs/"+first.ID, viewer, nil, 200, nil)
			h.json("GET", "/v1/installations/kit", viewer, nil, 404, nil)
			var conns struct{ Data []struct{ Name string } }
			h.json("GET", "/v1/connections", admin, nil, 200, &conns)
			for _, c := range conns.Data {
				if c.Name == "kit-main" {
					t.Fatal("the installation's connection outlived it")
				}
			}
		})
	}
}

// vaultKit11 is vault-kit 1.1.0: on vault ^1.1, purge takes "id" for
// "item" (breaking), nap is gone, and fail is new.
func vaultKit11() []byte {
	doc := strings.Replace(string(vaultKit("1.1.0", "^1.1")),
		`"properties": {"item": {"type": "string", "minLength": 1}}, "required": ["item"], "additionalProperties": false},
     "fields": {"item": "/id"}},`,
		`"properties": {"id": {"type": "string", "minLength": 1}}, "required": ["id"], "additionalProperties": false},
     "fields": {"id": "/id"}},`, 1)
	return []byte(strings.Replace(doc, `{"name": "nap", "title": "Nap", "connection": "main", "action": "slow", "params": {"ms": 5},`,
		`{"name": "fail", "title": "Fail", "connection": "main", "action": "fail",`, 1))
}

// upgradeAndRollBack publishes vault 1.1.0 and vault-kit 1.1.0, previews
// the installation's upgrade (its diff, and a dry run of its runs),
// upgrades it with consent, runs the new version beside a second
// installation of the old one, rolls it back to its lock byte for byte,
// and upgrades it twice at once: one wins.
func upgradeAndRollBack(t *testing.T, h *httpClient, admin, developer, viewer, token string, priv minisign.PrivateKey, vault11 []byte, id string) {
	t.Helper()
	h.publish(token, vault11, priv)
	h.publish(token, packTemplate(t, "acme/vault-kit", vaultKit11()), priv)

	var lockBefore struct {
		Version    string `json:"version"`
		LockSHA256 string `json:"lock_sha256"`
	}
	h.json("GET", "/v1/installations/"+id, viewer, nil, 200, &lockBefore)

	body := map[string]any{"version": "^1.1"}
	h.json("POST", "/v1/installations/"+id+"/upgrade/preview", developer, body, 403, nil)
	var preview struct {
		From, To         string
		PermissionDigest string `json:"permission_digest"`
		Diff             struct {
			PresetsAdded   []string `json:"presets_added"`
			PresetsRemoved []string `json:"presets_removed"`
			PresetsChanged []struct {
				Name, Input string
			} `json:"presets_changed"`
			Connectors []struct{ Name, From, To string }
			Breaking   bool
		}
		DryRun []struct{ Run, Preset, Outcome string } `json:"dry_run"`
	}
	h.json("POST", "/v1/installations/"+id+"/upgrade/preview", admin, body, 200, &preview)
	d := preview.Diff
	if preview.From != "1.0.0" || preview.To != "1.1.0" || strings.Join(d.PresetsAdded, ",") != "fail" || strings.Join(d.PresetsRemoved, ",") != "nap" ||
		len(d.PresetsChanged) != 1 || d.PresetsChanged[0].Name != "purge" || d.PresetsChanged[0].Input != "breaking" || !d.Breaking ||
		len(d.Connectors) != 1 || d.Connectors[0].From != "1.0.0" || d.Connectors[0].To != "1.1.0" {
		t.Fatalf("upgrade preview: %+v", preview)
	}
	outcomes := map[string]string{}
	for _, r := range preview.DryRun {
		outcomes[r.Preset] += r.Outcome + " "
	}
	// whoami ran three times (once failed, and retried): each goes to
	// vault 1.1.0 now.
	if outcomes["kit.whoami"] != "different different different " || outcomes["kit.purge"] != "invalid " || outcomes["kit.nap"] != "removed " {
		t.Fatalf("dry run: %v (%+v)", outcomes, preview.DryRun)
	}

	h.json("POST", "/v1/installations/"+id+"/upgrade", admin, map[string]any{"version": "^1.1", "accept": "x"}, 409, nil)
	var up struct {
		Version string `json:"version"`
	}
	h.json("POST", "/v1/installations/"+id+"/upgrade", admin, map[string]any{"version": "^1.1", "accept": preview.PermissionDigest}, 200, &up)
	if up.Version != "1.1.0" {
		t.Fatalf("upgraded: %+v", up)
	}

	// Side by side: a second installation pinned to 1.0.0 runs vault
	// 1.0.0 while the first runs 1.1.0.
	var plan struct {
		PermissionDigest string `json:"permission_digest"`
	}
	h.json("GET", "/v1/marketplace/templates/acme/vault-kit/plan?version=1.0.0", viewer, nil, 200, &plan)
	h.json("POST", "/v1/installations", admin, map[string]any{"template": "acme/vault-kit", "version": "1.0.0", "name": "old-kit",
		"connections": map[string]any{"main": map[string]any{"secrets": map[string]string{"token": "t"}}}, "accept": plan.PermissionDigest}, 201, nil)
	ran := func(action string) (version, templateVersion string) {
		var run struct {
			Status, Version string
			Preset          struct {
				TemplateVersion string `json:"template_version"`
			}
		}
		h.json("POST", "/v1/actions/"+action+"/execute", developer, map[string]any{"params": map[string]any{}}, 200, &run)
		if run.Status != "succeeded" {
			t.Fatalf("%s: %+v", action, run)
		}
		return run.Version, run.Preset.TemplateVersion
	}
	if v, tv := ran("kit.whoami"); v != "1.1.0" || tv != "1.1.0" {
		t.Fatalf("the upgraded installation ran vault %s, template %s", v, tv)
	}
	if v, tv := ran("old-kit.whoami"); v != "1.0.0" || tv != "1.0.0" {
		t.Fatalf("the pinned installation ran vault %s, template %s", v, tv)
	}
	h.json("POST", "/v1/actions/kit.nap/execute", developer, map[string]any{"params": map[string]any{}}, 404, nil)
	h.json("DELETE", "/v1/installations/old-kit", admin, nil, 204, nil)
	// Its connection stays (it was not asked to go), its presets do not.
	h.json("POST", "/v1/actions/old-kit.whoami/execute", developer, map[string]any{"params": map[string]any{}}, 404, nil)
	var conns struct{ Data []struct{ Name string } }
	h.json("GET", "/v1/connections", admin, nil, 200, &conns)
	if !slices.ContainsFunc(conns.Data, func(c struct{ Name string }) bool { return c.Name == "old-kit-main" }) {
		t.Fatalf("the uninstalled installation's connection is gone: %+v", conns.Data)
	}

	// Rollback: the lock before, byte for byte, and the version it ran.
	h.json("POST", "/v1/installations/"+id+"/rollback", developer, nil, 403, nil)
	var back struct {
		Version    string `json:"version"`
		LockSHA256 string `json:"lock_sha256"`
		RollbackTo string `json:"rollback_to"`
	}
	h.json("POST", "/v1/installations/"+id+"/rollback", admin, nil, 200, &back)
	if back.Version != "1.0.0" || back.LockSHA256 != lockBefore.LockSHA256 || back.RollbackTo != "1.1.0" {
		t.Fatalf("rolled back: %+v, lock before %s", back, lockBefore.LockSHA256)
	}
	if v, tv := ran("kit.whoami"); v != "1.0.0" || tv != "1.0.0" {
		t.Fatalf("after the rollback, ran vault %s, template %s", v, tv)
	}

	// Two upgrades at once: one applies, the other is refused.
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			b, _ := json.Marshal(map[string]any{"version": "^1.1", "accept": preview.PermissionDigest})
			req, _ := http.NewRequest("POST", h.base+"/v1/installations/"+id+"/upgrade", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	if a, b := <-codes, <-codes; a+b != 200+409 {
		t.Fatalf("two upgrades at once answered %d and %d, want 200 and 409", a, b)
	}
	var audit struct{ Data []struct{ Action string } }
	h.json("GET", "/v1/audit?limit=200", admin, nil, 200, &audit)
	counts := map[string]int{}
	for _, r := range audit.Data {
		counts[r.Action]++
	}
	if counts["installation.upgrade"] != 2 || counts["installation.rollback"] != 1 || counts["installation.create"] != 2 || counts["installation.delete"] != 1 {
		t.Fatalf("installation audit records: %v", counts)
	}
}

// keyedRun is what executeKeyed reads of a run.
type keyedRun struct {
	ID, Status string
	Output     map[string]any
}

// executeKeyed executes an action with an Idempotency-Key, wanting 200.
func (h *httpClient) executeKeyed(action, key, idem string, body any) keyedRun {
	h.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", h.base+"/v1/actions/"+action+"/execute", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idem)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var run keyedRun
	if resp.StatusCode != 200 || json.Unmarshal(data, &run) != nil {
		h.t.Fatalf("execute %s: %d %s", action, resp.StatusCode, data)
	}
	return run
}

// publishStatus publishes a package that the registry should refuse, and
// returns its problem.
func (h *httpClient) publishStatus(token string, pkg []byte, priv minisign.PrivateKey) (p struct{ Code, Detail string }) {
	h.t.Helper()
	x, err := relaypkg.Inspect(bytes.NewReader(pkg), relaypkg.Limits{})
	if err != nil {
		h.t.Fatal(err)
	}
	sig, _ := relaypkg.Sign(priv, x.IndexBytes)
	var up struct{ ID string }
	h.json("POST", "/v1/registry/uploads", token, nil, 201, &up)
	req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/registry/uploads/%s/parts/0", h.base, up.ID), bytes.NewReader(pkg))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("upload: %v %v", resp, err)
	}
	resp.Body.Close()
	b, _ := json.Marshal(map[string]string{"upload": up.ID, "signature": string(sig)})
	req, _ = http.NewRequest("POST", h.base+"/v1/registry/packages/"+x.Index.Package+"/versions", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 400 {
		h.t.Fatalf("publish of %s: %d, want a refusal", x.Index, resp.StatusCode)
	}
	json.NewDecoder(resp.Body).Decode(&p)
	return p
}
