package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// TestMarketplaceWalkthrough runs the walk-through of docs/marketplace.md
// as a reader would: every sh block of its section, as it is, with bash,
// in a folder outside the repository, with the relay binary built from
// this tree on the PATH, against a server it starts (its built-in webhook
// connector packed native only, so no WASM compile is waited for) and a
// receiver of its own. The template is the one relay template init
// writes; it is published, found, installed with consent, run, upgraded
// to a version the guide makes with jq, run, rolled back and run again,
// and the receiver sees each delivery from the version that sent it.
func TestMarketplaceWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds relay and runs connectors")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walk-through needs %s: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../../docs/marketplace.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(t, doc, "## Walk-through")
	if len(blocks) < 8 {
		t.Fatalf("docs/marketplace.md's walk-through has %d sh blocks", len(blocks))
	}

	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "relay"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pkgs := filepath.Join(tmp, "packages")
	nativeWebhookPackage(t, pkgs)

	var mu sync.Mutex
	var deliveries []map[string]any
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &body); err != nil || r.Header.Get("webhook-signature") == "" {
			http.Error(w, "not a signed event", http.StatusBadRequest)
			return
		}
		mu.Lock()
		deliveries = append(deliveries, body)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	m, banner := startMain(t, Config{DataDir: filepath.Join(tmp, "relay-data"), ConnectorsDir: filepath.Join(tmp, "no-connectors"),
		PackagesDir: pkgs, EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, io.Discard)
	work, home := filepath.Join(tmp, "work"), filepath.Join(tmp, "home")
	for _, d := range []string{work, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// What the guide asks its reader to set; its own export lines are
	// the reader's values, replaced by the test's.
	given := map[string]string{
		"RELAY_API_KEY": keyRE.FindString(banner), "RELAY_REGISTRY_URL": m.URL(),
		"RECEIVER_URL": receiver.URL + "/hooks", "SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + home}
	for k, v := range given {
		env = append(env, k+"="+v)
	}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "TMPDIR"} {
		if x := os.Getenv(v); x != "" {
			env = append(env, v+"="+x)
		}
	}

	var outs []string
	for _, b := range blocks {
		var script []string
		for _, line := range strings.Split(b, "\n") {
			if name, _, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
				if _, ok := given[name]; !ok {
					t.Fatalf("the walk-through sets %s, which the test does not give", name)
				}
				continue
			}
			script = append(script, line)
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
		cmd.Dir, cmd.Env = work, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t.Logf("$ %s", strings.Join(script, "\n$ "))
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		t.Logf("%s", stdout.String())
		outs = append(outs, stdout.String())
	}
	all := strings.Join(outs, "\n")
	for _, want := range []string{`"name":"acme/order-alerts"`, `"permission_digest"`, `"presets":["order-alerts.notify"]`,
		`"status":"succeeded"`, `"dry_run"`, `"version":"0.2.0"`, `"rollback_to":"0.2.0"`} {
		if !strings.Contains(all, want) {
			t.Errorf("the walk-through's output lacks %s", want)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 3 {
		t.Fatalf("the receiver got %d deliveries, want 3: %v", len(deliveries), deliveries)
	}
	for i, want := range []struct {
		order   float64
		version any
	}{{1001, nil}, {1002, "0.2.0"}, {1003, nil}} {
		d := deliveries[i]
		data, _ := d["data"].(map[string]any)
		if d["event"] != "order.paid" || d["source"] != "acme/order-alerts" || data["order"] != want.order || d["template_version"] != want.version {
			t.Errorf("delivery %d: %v", i+1, d)
		}
	}
}

// shellBlocks returns the sh blocks of a markdown document's section,
// from its heading (a prefix of the line) to the next heading of its
// level.
func shellBlocks(t *testing.T, doc []byte, heading string) []string {
	t.Helper()
	var blocks []string
	var in, fenced bool
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, heading):
			in = true
		case in && !fenced && strings.HasPrefix(line, "## "):
			return blocks
		case in && line == "```sh":
			fenced = true
			cur.Reset()
		case in && fenced && line == "```":
			fenced = false
			blocks = append(blocks, cur.String())
		case in && fenced:
			cur.WriteString(line + "\n")
		}
	}
	if !in {
		t.Fatalf("no section %q", heading)
	}
	return blocks
}

// nativeWebhookPackage packs relay/webhook, native only for this machine,
// into dir, as make build would (but for the WASM module).
func nativeWebhookPackage(t *testing.T, dir string) {
	t.Helper()
	built := catalogtest.Build(t, t.TempDir(), "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	files := map[string][]byte{}
	for path, src := range map[string]string{
		relaypkg.ManifestPath:                             filepath.Join(built, "manifest.json"),
		relaypkg.NativePath(runtime.GOOS, runtime.GOARCH): filepath.Join(built, "connector"),
		relaypkg.ReadmePath:                               "../../plugins/webhook/README.md",
		relaypkg.LicensePath:                              "../../plugins/webhook/LICENSE",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		files[path] = data
	}
	data, index, err := relaypkg.PackBytes("relay/webhook", files)
	if err != nil {
		t.Fatal(err)
	}
	var x struct{ Version string }
	json.Unmarshal(index, &x)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, relaypkg.FileName("relay/webhook", x.Version)), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
