//go:build !wasip1

package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

// guest is testdata/guest built as a WASM module and run by sdk/wasmhost,
// whose log lines are kept.
type guest struct {
	e    *wasmhost.Engine
	mod  *wasmhost.Module
	logs *syncBuffer
}

var (
	guestOnce sync.Once
	guestWasm []byte
	guestErr  error
)

func newGuest(t *testing.T) *guest {
	t.Helper()
	guestOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "relay-sdk-guest-test.wasm")
		cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			guestErr = errors.New(string(msg))
			return
		}
		guestWasm, guestErr = os.ReadFile(out)
		os.Remove(out)
	})
	if guestErr != nil {
		t.Fatalf("building testdata/guest for wasip1: %v", guestErr)
	}
	ctx := context.Background()
	logs := &syncBuffer{}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = ""
	} else {
		dir = filepath.Join(dir, "relay", "connectortest-wasm")
	}
	e, err := wasmhost.NewEngine(ctx, wasmhost.Options{
		CompilationCacheDir: dir,
		Logger:              hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Trace}),
		Egress:              egress.New([]string{"*"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	mod, err := e.Compile(ctx, guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	return &guest{e: e, mod: mod, logs: logs}
}

func (g *guest) instance(t *testing.T) *wasmhost.Instance {
	t.Helper()
	i, err := g.mod.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { i.Close(context.Background()) })
	return i
}

func execute(t *testing.T, i *wasmhost.Instance, action string, input any) (*connectorv1.ExecuteResponse, error) {
	t.Helper()
	raw, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return i.Execute(ctx, &connectorv1.ActionRequest{Action: action, InputJson: raw})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Built for wasip1, the same main serves the connector through the ABI:
// Describe says runtime wasm, and a handler runs, sleeps and logs at its
// level through relay.log.
func TestWasmGuestServes(t *testing.T) {
	g := newGuest(t)
	i := g.instance(t)
	d, err := i.Describe(context.Background(), &connectorv1.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Name, Runtime string }
	if err := json.Unmarshal(d.GetManifestJson(), &m); err != nil || m.Name != "guest" || m.Runtime != "wasm" {
		t.Errorf("manifest %s: %v", d.GetManifestJson(), err)
	}

	start := time.Now()
	if r, err := execute(t, i, "sleep", map[string]int{"ms": 50}); err != nil || r.GetError() != nil {
		t.Fatalf("sleep: %v %v", err, r.GetError())
	}
	if slept := time.Since(start); slept < 50*time.Millisecond {
		t.Errorf("time.Sleep(50ms) returned after %v", slept)
	}

	if r, err := execute(t, i, "log", map[string]any{}); err != nil || r.GetError() != nil {
		t.Fatalf("log: %v %v", err, r.GetError())
	}
	var found bool
	for _, line := range strings.Split(g.logs.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		msg, _ := entry["@message"].(string)
		if strings.Contains(msg, "guest says hello") {
			found = true
			if entry["@level"] != "warn" || !strings.Contains(msg, "answer=42") || strings.Contains(msg, "[WARN]") {
				t.Errorf("the guest's warning reached the host as %s; want level warn, the field, and no level in the text", line)
			}
		}
	}
	if !found {
		t.Errorf("the guest's log line did not reach the host's log:\n%s", g.logs)
	}
}

// A module built with the SDK leaves the input's schema check to its
// host (docs/wasm-abi.md): sleep's schema requires "ms", which its Go type
// does not. The host checks against the module's own description when it
// has no manifest, and against the manifest it is given otherwise,
// answering INVALID_INPUT itself, without entering the guest (a panic
// action's input that breaks its schema leaves the instance whole),
// unless the caller says it has validated the input.
func TestWasmHostValidatesForTheGuest(t *testing.T) {
	g := newGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	i := g.instance(t)
	for _, validated := range []bool{false, true} {
		r, err := i.Execute(ctx, &connectorv1.ActionRequest{Action: "sleep", InputJson: []byte(`{}`), InputValidated: validated})
		if err != nil {
			t.Fatal(err)
		}
		invalid := r.GetError().GetCode() == connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT
		if invalid == validated || (!invalid && r.GetError() != nil) {
			t.Fatalf("no manifest, input_validated %v: %v; want INVALID_INPUT only when false", validated, r.GetError())
		}
	}

	desc, err := i.Describe(ctx, &connectorv1.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(desc.GetManifestJson())
	if err != nil {
		t.Fatal(err)
	}
	mod, err := g.e.CompileWith(ctx, guestWasm, wasmhost.ModuleOptions{Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close(context.Background()) })
	vi, err := mod.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vi.Close(context.Background()) })
	for _, tc := range []struct {
		action, input string
		validated     bool
		invalid       bool
	}{
		{"sleep", `{}`, false, true},
		{"sleep", `{}`, true, false},
		{"sleep", `{"ms":1}`, false, false},
		{"sleep", `not json`, false, true},
		{"panic", `{"unexpected":1}`, false, true},
	} {
		r, err := vi.Execute(ctx, &connectorv1.ActionRequest{Action: tc.action, InputJson: []byte(tc.input), InputValidated: tc.validated})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.action, tc.input, err)
		}
		invalid := r.GetError().GetCode() == connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT
		if invalid != tc.invalid || (!invalid && r.GetError() != nil) {
			t.Errorf("%s %s (input_validated %v): got %v; want INVALID_INPUT %v", tc.action, tc.input, tc.validated, r.GetError(), tc.invalid)
		}
	}
	if vi.Broken() {
		t.Error("the panic action ran: the host let an input that breaks its schema through")
	}
}

// A panic in a handler is a trap: the call fails as crashed and the
// instance is broken; a fresh instance serves.
func TestWasmGuestPanicIsACrash(t *testing.T) {
	g := newGuest(t)
	i := g.instance(t)
	_, err := execute(t, i, "panic", map[string]any{})
	var werr *wasmhost.Error
	if !errors.As(err, &werr) || werr.Kind != wasmhost.KindCrashed {
		t.Fatalf("a panicking handler: got %v, want a wasmhost error of kind crashed", err)
	}
	if !i.Broken() {
		t.Error("the instance that panicked is not broken")
	}
	if !strings.Contains(g.logs.String(), "guest panics on purpose") {
		t.Errorf("the panic's text is not in the host's log:\n%s", g.logs)
	}
	if r, err := execute(t, g.instance(t), "sleep", map[string]int{"ms": 1}); err != nil || r.GetError() != nil {
		t.Errorf("a fresh instance: %v %v", err, r.GetError())
	}
}

// Outbound HTTP in a module, with connector.Fetch and with nethttp's
// client: the request leaves through the host with its headers; a body
// over the host's cap comes back cut and says so; a redirect to another
// origin comes back to the module, which follows it or not; a refused
// address is EGRESS_DENIED, worded as the native guard words it; a closed
// port is RETRYABLE.
func TestWasmGuestHTTP(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2<<20)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answer", "other")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answer", r.Header.Get("X-Guest"))
		switch r.URL.Path {
		case "/big":
			w.Write(big)
		case "/away":
			http.Redirect(w, r, other.URL+"/", http.StatusFound)
		default:
			w.Write([]byte("hello"))
		}
	}))
	defer srv.Close()
	g := newGuest(t)
	i := g.instance(t)

	type output struct {
		Status    int    `json:"status"`
		Header    string `json:"header"`
		BodyBytes int    `json:"body_bytes"`
		Truncated bool   `json:"truncated"`
		ReadError string `json:"read_error"`
	}
	for _, action := range []string{"fetch", "fetch_nethttp"} {
		t.Run(action, func(t *testing.T) {
			fetch := func(input map[string]any) (output, *connectorv1.Error) {
				t.Helper()
				r, err := execute(t, i, action, input)
				if err != nil {
					t.Fatalf("%s %v: %v", action, input, err)
				}
				var out output
				if r.GetError() == nil {
					if err := json.Unmarshal(r.GetOutputJson(), &out); err != nil {
						t.Fatal(err)
					}
				}
				return out, r.GetError()
			}
			follow, stay := map[string]any{"url": srv.URL + "/away", "redirects": 1}, map[string]any{"url": srv.URL + "/away"}
			if action == "fetch_nethttp" {
				follow, stay = map[string]any{"url": srv.URL + "/away"}, map[string]any{"url": srv.URL + "/away", "no_redirect": true}
			}

			if out, perr := fetch(map[string]any{"url": srv.URL + "/"}); perr != nil || out != (output{Status: 200, Header: "yes", BodyBytes: 5}) {
				t.Errorf("a plain GET: %+v %v", out, perr)
			}
			out, perr := fetch(map[string]any{"url": srv.URL + "/big"})
			if action == "fetch" {
				if perr != nil || out.Status != 200 || out.BodyBytes != wasmhost.DefaultMaxHTTPResponse || !out.Truncated {
					t.Errorf("a body over the host's cap: %+v %v; want %d bytes, marked truncated", out, perr, wasmhost.DefaultMaxHTTPResponse)
				}
			} else if perr != nil || out.Status != 200 || out.BodyBytes != wasmhost.DefaultMaxHTTPResponse || !strings.Contains(out.ReadError, "cut") {
				t.Errorf("a body over the host's cap: %+v %v; want %d bytes, then an error saying it was cut", out, perr, wasmhost.DefaultMaxHTTPResponse)
			}
			if out, perr := fetch(follow); perr != nil || out.Status != 200 || out.Header != "other" {
				t.Errorf("a redirect to another origin, followed: %+v %v", out, perr)
			}
			if out, perr := fetch(stay); perr != nil || out.Status != http.StatusFound {
				t.Errorf("a redirect to another origin, not followed: %+v %v", out, perr)
			}
			if _, perr := fetch(map[string]any{"url": "http://169.254.169.254/latest/meta-data"}); perr.GetCode() != connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED ||
				!strings.HasSuffix(perr.GetMessage(), `egress to 169.254.169.254 (169.254.169.254) refused: link-local (includes cloud metadata); an operator can allow it with --egress-allow`) ||
				strings.Count(perr.GetMessage(), "refused") != 1 {
				t.Errorf("the metadata address: got %v, want EGRESS_DENIED as the native guard words it", perr)
			}
			if _, perr := fetch(map[string]any{"url": "http://127.0.0.1:1/"}); perr.GetCode() != connectorv1.ErrorCode_ERROR_CODE_RETRYABLE {
				t.Errorf("a closed port: got %v, want RETRYABLE", perr)
			}
		})
	}
}

// A module links neither protobuf's generated code and reflection nor the
// JSON Schema compiler, nor gRPC: they were a third of a module's code and
// most of its start (wire.go, schemacheck_wasip1.go). Nor does the SDK
// link net/http or crypto/tls (connector.Fetch does without them): a
// module links them only through sdk/connector/nethttp, as the test guest
// does.
func TestWasmBuildLeavesOutTheHeavyPackages(t *testing.T) {
	heavy := []string{
		"google.golang.org/protobuf/proto", "google.golang.org/protobuf/internal/impl",
		"github.com/relayhq/relay/sdk/protocol/connectorv1", "github.com/santhosh-tekuri/jsonschema/v6", "google.golang.org/grpc",
	}
	for pkg, heavy := range map[string][]string{
		"./testdata/guest": heavy,
		".":                append(heavy, "net/http", "crypto/tls", "crypto/x509"),
	} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, h := range heavy {
			if slices.Contains(deps, h) {
				t.Errorf("%s, built for wasip1, links %s", pkg, h)
			}
		}
		if !slices.Contains(deps, "github.com/relayhq/relay/sdk/connector") {
			t.Fatalf("go list printed no SDK among the deps of %s:\n%s", pkg, out)
		}
	}
}
