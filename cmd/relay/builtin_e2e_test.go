package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/sdk/connectortest"
)

// packFirstParty builds and packs plugins/<name> into out with the
// commands make build runs (relay connector build, then pack), for this
// machine, and returns the package's path.
func packFirstParty(t testing.TB, name, out string) string {
	t.Helper()
	dist := filepath.Join(t.TempDir(), "dist")
	dir := filepath.Join("..", "..", "plugins", name)
	for _, args := range [][]string{
		{"connector", "build", "--dir", dir, "--platform", runtime.GOOS + "/" + runtime.GOARCH, "--out", dist},
		{"connector", "pack", "--dir", dir, "--dist", dist, "--out", out},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("relay %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
	}
	matches, _ := filepath.Glob(filepath.Join(out, "relay-"+name+"-*.relaypkg"))
	if len(matches) != 1 {
		t.Fatalf("packing %s made %v", name, matches)
	}
	return matches[0]
}

// TestFirstPartyPackages builds relay/echo as make build does, twice (the
// same bytes), and starts servers on it: a fresh one publishes it under
// relay, lists it in its registry, offers echo.echo to a workspace that
// installed nothing, and runs it in both forms from the unpacked package;
// a tampered package beside it is refused, and the server starts all the
// same. A restart (on SQLite), or a second replica (on PostgreSQL), finds
// the version published with the same bytes and changes nothing.
func TestFirstPartyPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs connectors")
	}
	pkgs := t.TempDir()
	echo := packFirstParty(t, "echo", pkgs)
	again := packFirstParty(t, "echo", t.TempDir())
	if a, b := fileSHA256(t, echo), fileSHA256(t, again); a != b {
		t.Fatalf("two builds of relay/echo differ: %s, %s", a, b)
	}
	data, _ := os.ReadFile(echo)
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(filepath.Join(pkgs, "relay-broken-1.0.0.relaypkg"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Compiling a Go-built module takes minutes under the race detector:
	// the modules compiled once (by the conformance kit, or another test
	// that runs echo) are shared.
	wasmCache := connectortest.CompilationCacheDir()

	// The connectors commands run them too, with no server: the tampered
	// one is skipped.
	t.Setenv("RELAY_DATA_DIR", filepath.Join(t.TempDir(), "relay-data"))
	t.Setenv("RELAY_WASM_CACHE_DIR", wasmCache)
	for _, c := range []struct{ args, want []string }{
		{[]string{"connectors", "list"}, []string{"echo", "1.0.0", "wasm,native", "echo.echo"}},
		{[]string{"connectors", "call", "echo", "echo", "--input", `{"cli":1}`}, []string{`{"cli":1}`}},
		{[]string{"connectors", "call", "echo", "echo", "--runtime", "native", "--input", `{"cli":2}`}, []string{`{"cli":2}`}},
	} {
		var stdout, stderr bytes.Buffer
		args := append(c.args, "--packages-dir", pkgs, "--connectors-dir", t.TempDir())
		if err := run(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("relay %s: %v\n%s", strings.Join(c.args, " "), err, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stdout.String(), w) {
				t.Fatalf("relay %s: %q, want %q in it", strings.Join(c.args, " "), stdout.String(), w)
			}
		}
		if !strings.Contains(stderr.String(), "relay-broken-1.0.0.relaypkg") {
			t.Fatalf("relay %s did not say it skipped the tampered package: %s", strings.Join(c.args, " "), stderr.String())
		}
	}

	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir(), PackagesDir: pkgs, WASMCacheDir: wasmCache}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			logs := &syncBuffer{}
			m, banner := startMain(t, cfg, logs)
			waitForLog(t, logs, "WASM connector loaded", 1, 8*time.Minute)
			if !strings.Contains(logs.String(), `"package":"relay/echo@1.0.0"`) ||
				!strings.Contains(logs.String(), "REFUSED a first-party package") || !strings.Contains(logs.String(), "relay-broken-1.0.0.relaypkg") {
				t.Fatalf("the start's log:\n%s", logs.String())
			}
			admin := keyRE.FindString(banner)
			checkBuiltinEcho(t, &httpClient{t: t, base: m.URL()}, admin)

			// The next start, or another replica: nothing to publish.
			second := cfg
			if db.Name == "sqlite" {
				m.Close()
			} else {
				// Replicas share the database and the master key.
				second.DataDir = filepath.Join(t.TempDir(), "relay-data")
				second.MasterKeyFile = filepath.Join(cfg.DataDir, "master.key")
			}
			logs = &syncBuffer{}
			m2, _ := startMain(t, second, logs)
			waitForLog(t, logs, "WASM connector loaded", 1, 8*time.Minute)
			if strings.Contains(logs.String(), "published a first-party package") || !strings.Contains(logs.String(), `"unchanged":1`) {
				t.Fatalf("the second start's log:\n%s", logs.String())
			}
			h := &httpClient{t: t, base: m2.URL()}
			var out struct{ Output map[string]any }
			h.json("POST", "/v1/actions/echo.echo/execute", admin, map[string]any{"connection": "e-wasm", "params": map[string]any{"again": true}}, 200, &out)
			if out.Output["again"] != true {
				t.Fatalf("echo on the second server: %+v", out)
			}
		})
	}
}

// checkBuiltinEcho checks, with a fresh workspace's admin key, that echo
// is built in: in the registry as relay/echo, offered before any
// connection, not installable, and running in both forms.
func checkBuiltinEcho(t *testing.T, h *httpClient, admin string) {
	t.Helper()
	var pkg struct {
		Publisher string
		Latest    string
	}
	h.json("GET", "/v1/registry/packages/relay/echo", "", nil, 200, &pkg)
	if pkg.Publisher != "relay" || pkg.Latest != "1.0.0" {
		t.Fatalf("relay/echo in the registry: %+v", pkg)
	}
	h.json("GET", "/v1/registry/packages/relay/broken", "", nil, 404, nil)
	var actions struct {
		Data []struct{ ID, Version string }
	}
	h.json("GET", "/v1/actions", admin, nil, 200, &actions)
	if !hasAction(actions.Data, "echo.echo", "1.0.0") {
		t.Fatalf("actions: %+v", actions.Data)
	}
	h.json("POST", "/v1/connectors/install", admin, map[string]string{"package": "relay/echo"}, 409, nil)
	for _, form := range []string{"wasm", "native"} {
		h.json("POST", "/v1/connections", admin, map[string]any{"connector": "echo", "name": "e-" + form, "runtime": form}, 201, nil)
		var run struct {
			Status, Runtime string
			Output          map[string]any
		}
		h.json("POST", "/v1/actions/echo.echo/execute", admin, map[string]any{"connection": "e-" + form, "params": map[string]any{"form": form}}, 200, &run)
		if run.Status != "succeeded" || run.Runtime != form || run.Output["form"] != form {
			t.Fatalf("echo.echo in %s: %+v", form, run)
		}
	}
}
