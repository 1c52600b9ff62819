package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/client"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/connectortest"
)

// walkthroughStep is one step of docs/authoring.md's author's path: a
// command, or a file the guide says to replace.
type walkthroughStep struct {
	line  string   // the command as the guide writes it
	args  []string // its words, ~/ expanded
	shell bool     // or a curl command, which bash runs as written
	file  string   // or the file to write
	code  string   // with this
}

// apiPathRE finds the API route of a guide's curl command.
var apiPathRE = regexp.MustCompile(`/v1/[^"' ]+`)

// replaceRE is how the guide introduces a file's new text.
var replaceRE = regexp.MustCompile("Replace `([^`]+)` with this")

// walkthrough returns, in order, the lines of the guide's sh blocks that
// run relay connector, relay publisher, relay registry, minisign, cd or
// curl (with its continued lines), and the Go blocks that the guide says
// replace a file: the author's path from an empty folder to a connector
// running in a workspace. Lines of other commands (go, mkdir, export)
// are the reader's, not the test's.
func walkthrough(t *testing.T, doc []byte, home string) []walkthroughStep {
	t.Helper()
	var steps []walkthroughStep
	var fence, paragraph, file, continued string
	var blank bool
	var code strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if fence == "" {
				fence, file = strings.TrimPrefix(line, "```"), ""
				if m := replaceRE.FindStringSubmatch(paragraph); m != nil && fence == "go" {
					file = m[1]
				}
				code.Reset()
				continue
			}
			if file != "" {
				steps = append(steps, walkthroughStep{file: file, code: code.String()})
			}
			fence, paragraph, blank = "", "", false
			continue
		}
		switch fence {
		case "":
			// The paragraph before a block is the last one seen, blank
			// lines after it included.
			switch {
			case strings.TrimSpace(line) == "":
				blank = true
			case blank:
				paragraph, blank = line, false
			default:
				paragraph += " " + line
			}
			continue
		case "go":
			code.WriteString(line + "\n")
			continue
		case "sh":
		default:
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(continued + line)
		if rest, ok := strings.CutSuffix(line, "\\"); ok {
			continued = rest
			continue
		}
		continued = ""
		if strings.HasPrefix(line, "curl ") {
			steps = append(steps, walkthroughStep{line: line, shell: true})
			continue
		}
		if !slices.ContainsFunc([]string{"relay connector ", "relay publisher ", "relay registry ", "minisign ", "cd "}, func(p string) bool { return strings.HasPrefix(line, p) }) {
			continue
		}
		// The test runs words, not shell: a line that needs a shell is
		// not one it can vouch for.
		words, ok := plainWords(line)
		if !ok {
			t.Fatalf("docs/authoring.md: %q needs a shell; keep the author's commands plain", line)
		}
		var args []string
		for _, w := range words {
			if rest, ok := strings.CutPrefix(w, "~/"); ok {
				w = filepath.Join(home, rest)
			}
			args = append(args, w)
		}
		steps = append(steps, walkthroughStep{line: line, args: args})
	}
	return steps
}

// plainWords splits a command line into its words as a shell would one
// that needs nothing of a shell but double quotes around a word with
// spaces; ok is false for a line that does (variables, globs, pipes,
// redirections, other quotes, escapes).
func plainWords(line string) (words []string, ok bool) {
	var w strings.Builder
	quoted, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case strings.ContainsRune("$`\\", r), !quoted && strings.ContainsRune("|&;<>'*?", r):
			return nil, false
		case !quoted && (r == ' ' || r == '\t'):
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, false
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, true
}

// goEnv returns the go tool's value of each variable.
func goEnv(t *testing.T, names ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"env"}, names...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// The author's path of docs/authoring.md, run as the guide writes it, in a
// folder outside this repository: relay connector init, test, build (this
// machine's platform and at least one other, and WASM), pack, relay
// publisher keygen, relay connector sign, and minisign's own verify and
// sign; then, against a registry (a server the test starts, whose URL and
// admin key it sets as the guide's export lines do), relay publisher
// register, relay connector publish, registry show; the workspace admin's
// curl lines that install it, connect it to a status page (one the test
// serves) and execute its action; then yank, deprecate and a key
// rotation. Then what they made is checked: a run that succeeded and the
// one incident the status page was sent, a package Relay reads, the
// same bytes when packed again, a signature the minisign tool verifies (and
// one it makes that Relay verifies), a native binary for this machine that
// answers spec, and the registry's record of what was published.
//
// It needs the go tool, the minisign tool (it fails without it) and, for
// the new module's go mod tidy, the module proxy or a module cache holding
// the SDK's requirements (as after `make test` of sdk/).
func TestAuthorWalkthrough(t *testing.T) {
	minisignTool, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatal("the minisign tool is missing; install it (Debian: apt-get install minisign)")
	}
	doc, err := os.ReadFile("../../docs/authoring.md")
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := filepath.Abs("../../sdk")
	if err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	work := filepath.Join(tmp, "work")
	for _, d := range []string{home, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A home of its own, for keygen's ~/.relay; the go tool's caches and
	// settings, and the kit's compiled modules, stay where they are.
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	goVars := []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"}
	for i, v := range goEnv(t, goVars...) {
		t.Setenv(goVars[i], v)
	}
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", home)
	t.Setenv("RELAY_SDK", sdk)
	for _, v := range []string{"RELAY_PUBLISHER_KEY", "RELAY_PUBLISHER_KEY_PASSWORD", "RELAY_PUBLISHER_TOKEN", "RELAY_PUBLISHER_TOKEN_FILE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	// The registry, as the guide's reader starts it, allowed to reach the
	// status page below on loopback (--egress-allow).
	// Its compilation cache is the conformance kit's, which relay
	// connector test fills with the module relay connector build makes,
	// byte for byte: compiled under the race detector it would take
	// minutes, and the first call would not wait for it.
	server, banner := startMain(t, Config{DataDir: filepath.Join(tmp, "relay-data"), ConnectorsDir: filepath.Join(tmp, "no-connectors"),
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, WASMCacheDir: connectortest.CompilationCacheDir()}, io.Discard)
	t.Setenv("RELAY_REGISTRY_URL", server.URL())
	t.Setenv("RELAY_API_KEY", keyRE.FindString(banner))
	// The reader's status page: it takes a new incident as the guide's
	// connector posts it, and keeps what it was sent.
	var incidents []*http.Request
	var incidentBodies []string
	var mu sync.Mutex
	statusPage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/api/incidents" || r.Header.Get("Authorization") != "Bearer sp-token-1" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		mu.Lock()
		incidents, incidentBodies = append(incidents, r), append(incidentBodies, string(body))
		n := len(incidents)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"inc-%d","url":"https://status.example.com/incidents/%d"}`, n, n)
	}))
	defer statusPage.Close()
	t.Setenv("STATUS_PAGE_URL", statusPage.URL)
	t.Setenv("STATUS_PAGE_TOKEN", "sp-token-1")
	t.Chdir(work)

	steps := walkthrough(t, doc, home)
	var seen []string
	for _, s := range steps {
		switch {
		case s.file != "":
			seen = append(seen, "replace "+s.file)
		case s.shell:
			seen = append(seen, "curl "+apiPathRE.FindString(s.line))
		case s.args[0] == "relay":
			seen = append(seen, s.args[1]+" "+s.args[2])
		}
	}
	for _, want := range []string{"connector init", "replace connector.go", "replace connector_test.go",
		"connector test", "connector build", "connector pack", "publisher keygen", "connector sign",
		"publisher register", "connector publish", "registry show",
		"curl /v1/connectors/install", "curl /v1/connections", "curl /v1/actions/statuspage.open_incident/execute", "connector yank", "connector deprecate", "publisher key"} {
		if !slices.Contains(seen, want) {
			t.Fatalf("docs/authoring.md's walk-through lacks %s (it has %v)", want, seen)
		}
	}

	ctx := context.Background()
	relaySig := filepath.Join(tmp, "relay.minisig") // relay connector sign's, kept aside
	var executed []byte                             // the execute's answer
	for _, s := range steps {
		if s.file != "" {
			t.Logf("(replace %s)", s.file)
			if _, err := os.Stat(s.file); err != nil {
				t.Fatalf("the guide replaces %s, which is not there: %v", s.file, err)
			}
			if err := os.WriteFile(s.file, []byte(s.code), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Logf("$ %s", s.line)
		if s.shell {
			out, err := exec.Command("bash", "-c", s.line).Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", s.line, err, out)
			}
			t.Logf("%s", out)
			switch path := apiPathRE.FindString(s.line); {
			case strings.HasSuffix(path, "/execute"):
				executed = out
			case path == "/v1/connectors/install":
				// Compiled under the race detector, the 5 MB module takes
				// longer than the guide's next calls wait for it (a server
				// compiles it once, and the compilation cache keeps it):
				// the test has it loaded before it goes on.
				var inst struct{ Package, Version string }
				if err := json.Unmarshal(out, &inst); err != nil {
					t.Fatal(err)
				}
				e, err := server.catalog.Get(core.ConnectorRef{Name: inst.Package, Version: inst.Version})
				if err != nil {
					t.Fatal(err)
				}
				if err := server.runtime.wasm.LoadEntry(ctx, e); err != nil {
					t.Fatalf("loading the installed module: %v", err)
				}
			}
			continue
		}
		switch s.args[0] {
		case "cd":
			if len(s.args) != 2 {
				t.Fatalf("%q: cd takes one folder", s.line)
			}
			t.Chdir(s.args[1])
		case "minisign":
			out, err := exec.Command(minisignTool, s.args[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", s.line, err, out)
			}
		case "relay":
			var stdout, stderr bytes.Buffer
			if err := run(ctx, s.args[1:], &stdout, &stderr); err != nil {
				t.Fatalf("%s: %v (exit %d)\nstdout:\n%s\nstderr:\n%s", s.line, err, exitCode(err), stdout.String(), stderr.String())
			}
			t.Logf("%s", stdout.String())
			if s.args[1] == "connector" && s.args[2] == "sign" {
				sig, err := os.ReadFile(s.args[3] + ".index.minisig")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(relaySig, sig, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// What the walk-through made.
	pkgs, _ := filepath.Glob("*.relaypkg")
	if len(pkgs) != 1 {
		t.Fatalf("the walk-through left packages %v, want one", pkgs)
	}
	pkgPath, _ := filepath.Abs(pkgs[0])
	pkg, err := os.ReadFile(pkgPath)
	if err != nil {
		t.Fatal(err)
	}
	unpacked := filepath.Join(tmp, "unpacked")
	p, err := relaypkg.Unpack(bytes.NewReader(pkg), unpacked, relaypkg.DefaultLimits)
	if err != nil {
		t.Fatalf("Relay refuses the package: %v", err)
	}
	host := runtime.GOOS + "/" + runtime.GOARCH
	platforms := p.Index.Platforms()
	if p.Index.Package != "acme/statuspage" || !slices.Contains(platforms, host) || len(platforms) < 2 ||
		p.Index.File(relaypkg.WASMPath) == nil || p.Index.File(relaypkg.ChangelogPath) == nil || p.Manifest.Runtime != "wasm" {
		t.Errorf("the package %s has platforms %v, and members %+v", p.Index, platforms, p.Index.Files)
	}

	// Packed again, the same bytes.
	again := filepath.Join(tmp, "again.relaypkg")
	if err := run(ctx, []string{"connector", "pack", "--out", again}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(again); !bytes.Equal(pkg, b) {
		t.Error("packing the same build twice made different bytes")
	}

	// Relay's signature, checked by minisign; minisign's (the guide's
	// last step), checked by Relay.
	pubFile := filepath.Join(home, ".relay", "publisher.pub")
	out, err := exec.Command(minisignTool, "-Vm", pkgPath+".index", "-p", pubFile, "-x", relaySig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Trusted comment: relaypkg "+p.Index.String()) {
		t.Errorf("minisign -V on relay connector sign's signature: %v\n%s", err, out)
	}
	pubText, _ := os.ReadFile(pubFile)
	pub, err := relaypkg.ParsePublicKey(string(pubText))
	if err != nil {
		t.Fatal(err)
	}
	toolSig, _ := os.ReadFile(pkgPath + ".index.minisig")
	if bytes.Contains(toolSig, []byte("relaypkg ")) {
		t.Error("the guide's last signature is relay's, not the minisign tool's")
	}
	if err := relaypkg.Verify(pub, p.IndexBytes, toolSig); err != nil {
		t.Errorf("Relay does not verify minisign's signature of the index: %v", err)
	}

	// The registry holds the package, signed by minisign's signature (the
	// one beside it when publish ran), yanked, no longer deprecated, and
	// the publisher's first key revoked for the next.
	reg, err := client.New(client.Config{URL: server.URL()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Version(ctx, p.Index.Package, p.Index.Version)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pkg)
	if v.SHA256 != hex.EncodeToString(sum[:]) || v.Signer != relaypkg.KeyID(pub.ID()) || v.Signature != string(toolSig) ||
		v.Yanked == nil || v.Yanked.Reason == "" || v.Deprecated != "" {
		t.Errorf("the registry holds %+v", v)
	}
	publisher, err := reg.Publisher(ctx, "acme")
	if err != nil || len(publisher.Keys) != 2 || publisher.Keys[0].ID != v.Signer || publisher.Keys[0].Active() || !publisher.Keys[1].Active() {
		t.Errorf("the publisher after the key rotation: %+v %v", publisher, err)
	}
	if d, err := reg.Download(ctx, p.Index.Package, p.Index.Version, v.SHA256); err != nil || !bytes.Equal(d.Data, pkg) {
		t.Errorf("the download is not the package: %v", err)
	}

	// The workspace ran the connector it installed, once: its run, and
	// the one incident the status page was sent.
	var execRun struct {
		Status, Action, Connector string
		Output                    struct{ ID, URL string }
	}
	if err := json.Unmarshal(executed, &execRun); err != nil || execRun.Status != "succeeded" || execRun.Action != "statuspage.open_incident" || execRun.Output.ID != "inc-1" {
		t.Errorf("the execute answered %s (%v)", executed, err)
	}
	mu.Lock()
	if len(incidents) != 1 || incidents[0].Header.Get("Idempotency-Key") == "" || !strings.Contains(incidentBodies[0], `"title":"Checkout is slow"`) {
		t.Errorf("the status page was sent %d incidents: %q", len(incidents), incidentBodies)
	}
	mu.Unlock()

	// This machine's binary, out of the package, says what it is.
	spec, err := exec.Command(filepath.Join(unpacked, filepath.FromSlash(relaypkg.NativePath(runtime.GOOS, runtime.GOARCH))), "spec").Output()
	if err != nil {
		t.Fatalf("the packaged binary's spec: %v", err)
	}
	var m struct{ Name, Version, Runtime string }
	if err := json.Unmarshal(spec, &m); err != nil || m.Name != "statuspage" || m.Version != p.Index.Version || m.Runtime != "native" {
		t.Errorf("the packaged binary's spec says %+v (%v)", m, err)
	}
}

// A failing go test's exit code is relay connector test's.
func TestConnectorTestExitCode(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"go.mod": "module example.com/x\n\ngo 1.26.0\n", "x.go": "package x\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"connector", "test", "--dir", dir, "--", "-count=many"}, &stdout, &stderr)
	if exitCode(err) != 2 || !strings.Contains(stderr.String(), `invalid value "many" for flag -count`) {
		t.Errorf("exit %d (%v)\nstdout:\n%s\nstderr:\n%s", exitCode(err), err, stdout.String(), stderr.String())
	}
	err = run(context.Background(), []string{"connector", "test", "--dir", dir, "--", "-count=1"}, &stdout, &stderr)
	if err != nil {
		t.Errorf("a module without tests: %v", err)
	}
}
