package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// TestInstallFromTheRegistry publishes two versions of a real connector
// (testdata vault, built as a plugin) to a server's registry and installs
// them into two workspaces, one version each, with no restart: each
// workspace sees its own connector's actions, connects and executes on
// its own version, side by side; an upgrade needs its accept, a run in
// flight during it finishes on its version, and a rollback restores the
// version before.
func TestInstallFromTheRegistry(t *testing.T) {
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
			adminA := keyRE.FindString(banner)
			if _, err := relay(t, cfg, "workspaces", "create", "beta"); err != nil {
				t.Fatal(err)
			}
			out, err := relay(t, cfg, "keys", "create", "--workspace", "beta", "--role", "admin")
			if err != nil {
				t.Fatal(err)
			}
			adminB := strings.TrimSpace(out)

			pub, priv, _ := minisign.GenerateKey(nil)
			var reg struct{ Token string }
			h.json("POST", "/v1/registry/publishers", adminA, map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
			for _, v := range []string{"1.0.0", "1.1.0"} {
				h.publish(reg.Token, pkgs[v], priv)
			}

			// A installs ^1.0 (1.1.0); B pins 1.0.0, under another name.
			var inst struct {
				Name, Version string
				Artifacts     map[string]string
			}
			h.json("POST", "/v1/connectors/install", adminA, map[string]string{"package": "acme/vault", "version": "^1.0"}, 201, &inst)
			if inst.Name != "vault" || inst.Version != "1.1.0" || inst.Artifacts[runtime.GOOS+"/"+runtime.GOARCH] == "" {
				t.Fatalf("A installed %+v", inst)
			}
			h.json("POST", "/v1/connectors/install", adminB, map[string]string{"package": "acme/vault", "version": "1.0.0", "name": "safe"}, 201, &inst)

			// At once, no restart: each sees its own actions.
			var actions struct {
				Data []struct{ ID, Version string }
			}
			h.json("GET", "/v1/actions", adminA, nil, 200, &actions)
			if !hasAction(actions.Data, "vault.keys", "1.1.0") {
				t.Fatalf("A's actions: %+v", actions.Data)
			}
			h.json("GET", "/v1/actions", adminB, nil, 200, &actions)
			if !hasAction(actions.Data, "safe.keys", "1.0.0") || hasAction(actions.Data, "vault.keys", "1.1.0") {
				t.Fatalf("B's actions: %+v", actions.Data)
			}

			// Connect and execute, side by side, each on its version.
			execute := func(key, connector string) (version string) {
				h.json("POST", "/v1/connections", key, map[string]any{"connector": connector, "name": "main",
					"secrets": map[string]string{"token": "t0ken"}}, 201, nil)
				var run struct{ Status, Version, Package string }
				h.json("POST", "/v1/actions/"+connector+".keys/execute", key, map[string]any{"params": map[string]any{}}, 200, &run)
				if run.Status != "succeeded" || run.Package != "acme/vault" {
					t.Fatalf("execute %s: %+v", connector, run)
				}
				return run.Version
			}
			if v := execute(adminA, "vault"); v != "1.1.0" {
				t.Errorf("A ran %s", v)
			}
			if v := execute(adminB, "safe"); v != "1.0.0" {
				t.Errorf("B ran %s", v)
			}

			// B upgrades while a run of 1.0.0 is in flight; the run
			// finishes on the version it started on.
			type slowRun struct {
				Status, Version string
				err             error
			}
			inFlight := make(chan slowRun, 1)
			go func() {
				var run slowRun
				req, _ := http.NewRequest("POST", m.URL()+"/v1/actions/safe.slow/execute", strings.NewReader(`{"params":{"ms":8000}}`)) // still in flight after the upgrade, however slow the machine
				req.Header.Set("Authorization", "Bearer "+adminB)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					err = json.NewDecoder(resp.Body).Decode(&run)
					resp.Body.Close()
				}
				run.err = err
				inFlight <- run
			}()
			for deadline := time.Now().Add(10 * time.Second); ; {
				var runs struct{ Data []struct{ Status string } }
				h.json("GET", "/v1/runs?action=safe.slow", adminB, nil, 200, &runs)
				if len(runs.Data) == 1 && runs.Data[0].Status == "running" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the slow run did not start: %+v", runs.Data)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// B upgrades: the plan first, then the accept of exactly it.
			var plan struct {
				Accept string
				Diff   struct{ From, To string }
			}
			h.json("POST", "/v1/connectors/safe/upgrade/plan", adminB, map[string]string{"version": "1.1.0"}, 200, &plan)
			if plan.Diff.From != "1.0.0" || plan.Diff.To != "1.1.0" || plan.Accept == "" {
				t.Fatalf("plan %+v", plan)
			}
			h.json("POST", "/v1/connectors/safe/upgrade", adminB, map[string]string{"version": "1.1.0"}, 428, nil)
			h.json("POST", "/v1/connectors/safe/upgrade", adminB, map[string]string{"version": "1.1.0", "accept": plan.Accept}, 200, nil)
			select {
			case run := <-inFlight:
				t.Fatalf("the slow run ended (%+v) before the upgrade was done: it cannot show what a run in flight does", run)
			default:
			}
			if run := <-inFlight; run.err != nil || run.Status != "succeeded" || run.Version != "1.0.0" {
				t.Errorf("the run in flight during the upgrade: %+v, want succeeded on 1.0.0", run)
			}
			var run struct{ Version string }
			h.json("POST", "/v1/actions/safe.keys/execute", adminB, map[string]any{"params": map[string]any{}}, 200, &run)
			if run.Version != "1.1.0" {
				t.Errorf("after the upgrade B ran %s", run.Version)
			}
			h.json("POST", "/v1/connectors/safe/rollback", adminB, nil, 200, nil)
			h.json("POST", "/v1/actions/safe.keys/execute", adminB, map[string]any{"params": map[string]any{}}, 200, &run)
			if run.Version != "1.0.0" {
				t.Errorf("after the rollback B ran %s", run.Version)
			}
			var lock struct {
				Data []struct{ Name, Version string }
			}
			h.json("GET", "/v1/connectors/lock", adminB, nil, 200, &lock)
			if len(lock.Data) != 1 || lock.Data[0].Version != "1.0.0" {
				t.Errorf("B's lock %+v", lock.Data)
			}
			// The other workspace's connector is nowhere in this one's.
			h.json("POST", "/v1/actions/safe.keys/execute", adminA, map[string]any{"params": map[string]any{}}, 404, nil)

			// Every start of an installed binary checks it against the
			// digest its lock holds: changed in the package cache, it
			// does not start again, after a restart.
			m.Close()
			var bins []string
			filepath.WalkDir(filepath.Join(cfg.DataDir, "packages"), func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() && d.Name() == "connector" {
					bins = append(bins, path)
				}
				return err
			})
			if len(bins) != 2 {
				t.Fatalf("the package cache holds binaries %v, want one per version", bins)
			}
			for _, bin := range bins {
				os.Chmod(bin, 0o755)
				f, err := os.OpenFile(bin, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0})
				f.Close()
			}
			m, _ = startMain(t, cfg, io.Discard)
			h = &httpClient{t: t, base: m.URL()}
			var problem struct{ Code, Detail string }
			h.json("POST", "/v1/actions/safe.keys/execute", adminB, map[string]any{"params": map[string]any{}}, 503, &problem)
			if problem.Code != "connector_unavailable" || !strings.Contains(problem.Detail, "does not match the digest its lock holds") {
				t.Errorf("a changed binary: %+v", problem)
			}
		})
	}
}

// vaultPackages builds the testdata vault connector at each version, as a
// plugin for this machine, and packs each as acme/vault.
func vaultPackages(t testing.TB, versions ...string) map[string][]byte {
	t.Helper()
	built := t.TempDir()
	const vault = "github.com/relayhq/relay/core/httpapi/testdata/vault"
	pkgs := map[string][]byte{}
	for _, v := range versions {
		vdir := catalogtest.BuildWith(t, built, vault, "-X main.version="+v)
		files := map[string][]byte{relaypkg.ReadmePath: []byte("# vault"), relaypkg.LicensePath: []byte("MIT")}
		for path, src := range map[string]string{
			relaypkg.ManifestPath:                             "manifest.json",
			relaypkg.NativePath(runtime.GOOS, runtime.GOARCH): "connector",
		} {
			data, err := os.ReadFile(filepath.Join(vdir, src))
			if err != nil {
				t.Fatal(err)
			}
			files[path] = data
		}
		data, _, err := relaypkg.PackBytes("acme/vault", files)
		if err != nil {
			t.Fatal(err)
		}
		pkgs[v] = data
	}
	return pkgs
}

func hasAction(list []struct{ ID, Version string }, id, version string) bool {
	for _, a := range list {
		if a.ID == id && a.Version == version {
			return true
		}
	}
	return false
}

// httpClient calls a server's API with JSON in and out.
type httpClient struct {
	t    testing.TB
	base string
}

func (h *httpClient) json(method, path, key string, in any, want int, out any) {
	h.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.base+path, body)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %s: %v", method, path, data, err)
		}
	}
}

// publish uploads a package in parts and publishes it, signed by priv.
func (h *httpClient) publish(token string, pkg []byte, priv minisign.PrivateKey) {
	h.t.Helper()
	p, err := relaypkg.Inspect(bytes.NewReader(pkg), relaypkg.Limits{})
	if err != nil {
		h.t.Fatal(err)
	}
	sig, _ := relaypkg.Sign(priv, p.IndexBytes)
	var up struct{ ID string }
	h.json("POST", "/v1/registry/uploads", token, nil, 201, &up)
	for i, n := 0, 0; i < len(pkg); i, n = i+512<<10, n+1 {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/registry/uploads/%s/parts/%d", h.base, up.ID, n), bytes.NewReader(pkg[i:min(i+512<<10, len(pkg))]))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			h.t.Fatalf("part %d: %v %v", n, resp, err)
		}
		resp.Body.Close()
	}
	h.json("POST", "/v1/registry/packages/"+p.Index.Package+"/versions", token, map[string]string{"upload": up.ID, "signature": string(sig)}, 201, nil)
}
