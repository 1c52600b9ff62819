package wasmrt_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

func call(action, input string) core.ActionCall {
	return core.ActionCall{Action: action, Input: json.RawMessage(input), RunID: "run-1", WorkspaceID: "ws-1",
		Connection: core.ConnectionData{Config: json.RawMessage(`{}`), Secrets: map[string]string{"token": "s3cret"}}}
}

// The hand-written echo guest runs through the runtime, loaded from the
// catalog on first use; its own errors map as a native connector's do.
func TestEcho(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wasmrt.Config{})
	if !r.Runs(core.RuntimeWASM) || r.Runs(core.RuntimeNative) {
		t.Error("Runs: want wasm only")
	}
	out, err := r.Execute(ctx, watecho, call("echo", `{"a":[1,2,3]}`))
	if err != nil || string(out) != `{"a":[1,2,3]}` {
		t.Fatalf("Execute = %s, %v", out, err)
	}
	out, err = r.Preview(ctx, watecho, call("echo", `{"b":1}`))
	if err != nil || string(out) != `{"b":1}` {
		t.Fatalf("Preview = %s, %v", out, err)
	}
	if err := r.CheckConfig(ctx, watecho, core.ConnectionData{Config: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("CheckConfig: %v", err)
	}
	_, err = r.Execute(ctx, watecho, call("nope", `{}`))
	wantCode(t, err, core.EUnknownAction, "watecho@1.0.0: unknown action")
	_, err = r.Execute(ctx, watecho, call("echo", `[1]`))
	wantCode(t, err, core.EInvalidParams)
	var ce *core.Error
	if errors.As(err, &ce); len(ce.Fields) != 1 {
		t.Errorf("fields = %v; want one", ce.Fields)
	}
	_, err = r.Execute(ctx, core.ConnectorRef{Name: "nope", Version: "1.0.0"}, call("echo", `{}`))
	wantCode(t, err, core.ENotFound)
}

// An endless loop is stopped within its action's deadline (1 s, from the
// manifest) plus 100 ms, and the next call on the connector succeeds.
func TestEndlessLoopStopped(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wasmrt.Config{PoolSize: 1})
	if _, err := r.Execute(ctx, misbehave, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := r.Execute(ctx, misbehave, call("loop", `{}`))
	elapsed := time.Since(start)
	wantCode(t, err, core.EConnectorTimeout, "misbehave@0.0.1 action loop did not answer within 1s")
	if elapsed > time.Second+100*time.Millisecond {
		t.Errorf("the call returned after %v; want at most 1.1s", elapsed)
	}
	// The caller's own shorter deadline wins.
	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	start = time.Now()
	_, err = r.Execute(cctx, misbehave, call("loop", `{}`))
	cancel()
	wantCode(t, err, core.EConnectorTimeout)
	if elapsed := time.Since(start); elapsed > 250*time.Millisecond {
		t.Errorf("the call returned after %v; want at most 250ms", elapsed)
	}
	out, err := r.Execute(ctx, misbehave, call("echo", `{"after":"loop"}`))
	if err != nil || string(out) != `{"after":"loop"}` {
		t.Fatalf("the next call = %s, %v", out, err)
	}
	// A cancelled call is the caller's, not a timeout.
	cctx, cancel = context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = r.Execute(cctx, misbehave, call("loop", `{}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call = %v; want context.Canceled", err)
	}
}

// A trap is connector_crashed with its reason; a guest that grows its
// memory past the ceiling fails cleanly; the runtime goes on serving.
func TestCrashes(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wasmrt.Config{PoolSize: 1, MemoryLimitPages: 160})
	_, err := r.Execute(ctx, misbehave, call("trap", `{}`))
	wantCode(t, err, core.EConnectorCrashed, "connector misbehave@0.0.1 crashed during action trap: the guest trapped during relay_execute: unreachable (in function action)")
	_, err = r.Preview(ctx, misbehave, call("grow", `{}`))
	wantCode(t, err, core.EConnectorCrashed, "crashed during action grow", "of its 10.0 MiB ceiling")
	out, err := r.Execute(ctx, misbehave, call("echo", `{"still":"here"}`))
	if err != nil || string(out) != `{"still":"here"}` {
		t.Fatalf("after the crashes: %s, %v", out, err)
	}
}

// Two calls at once never share an instance: the guest traps when a call
// enters an instance another call is in, and the race detector watches
// the host's per-instance state. Callers beyond the pool's size wait.
func TestConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wasmrt.Config{PoolSize: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 4 {
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := r.Execute(cctx, misbehave, call("busy", `{}`))
				cancel()
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A caller that finds every instance busy until its deadline fails with
// connector_timeout, saying so.
func TestPoolFull(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wasmrt.Config{PoolSize: 1})
	if _, err := r.Execute(ctx, misbehave, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := r.Execute(ctx, misbehave, call("loop", `{}`)) // holds the one instance for 1 s
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := r.Execute(cctx, misbehave, call("echo", `{}`))
	wantCode(t, err, core.EConnectorTimeout, "all 1 instances were busy")
	wantCode(t, <-done, core.EConnectorTimeout)
	if _, err := r.Execute(ctx, misbehave, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
}

// load loads a module as watecho@1.0.0, with the echo guest's manifest.
func load(t *testing.T, r *wasmrt.Runtime, wasm []byte, sum []byte) error {
	t.Helper()
	return loadWith(t, r, watecho, wasm, sum, mustParse(t, echoManifest(t)))
}

func loadWith(t *testing.T, r *wasmrt.Runtime, ref core.ConnectorRef, wasm []byte, sum []byte, m *manifest.Manifest) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "connector.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return r.Load(context.Background(), ref, path, sum, m)
}

func mustParse(t *testing.T, manifestJSON string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(manifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func digest(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// Load refuses a module whose digest does not match, whose declared memory
// minimum is over the ceiling, or that breaks the ABI; calls on it then
// fail as unavailable.
func TestLoadRefuses(t *testing.T) {
	r, err := wasmrt.New(context.Background(), wasmrt.Config{MemoryLimitPages: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ref := watecho
	echo := guest(t, "echo")

	err = load(t, r, echo, digest([]byte("something else")))
	wantCode(t, err, core.EConnectorUnavailable, "checksum mismatch")
	_, err = r.Execute(context.Background(), ref, call("echo", `{}`))
	wantCode(t, err, core.ENotFound)

	big := strings.Replace(string(mustRead(t, filepath.Join(guests, "echo.wat"))), `(memory (export "memory") 1)`, `(memory (export "memory") 65)`, 1)
	wasm := buildWAT(t, big)
	err = load(t, r, wasm, digest(wasm))
	wantCode(t, err, core.EConnectorUnavailable, "memory's declared minimum is over the host's ceiling of 64 pages (4 MiB)")

	command := `(module (memory (export "memory") 1) (func (export "_start")))`
	wasm = buildWAT(t, command)
	err = load(t, r, wasm, digest(wasm))
	wantCode(t, err, core.EConnectorUnavailable, "does not follow the Relay WASM ABI v1", "it is a command")

	if err := load(t, r, echo, digest(echo)); err != nil {
		t.Fatal(err)
	}
	if out, err := r.Execute(context.Background(), ref, call("echo", `{}`)); err != nil || string(out) != `{}` {
		t.Fatalf("Execute = %s, %v", out, err)
	}
	// Loaded again (a new version of the file), it serves on.
	if err := load(t, r, echo, digest(echo)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Execute(context.Background(), ref, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
}

// A version whose module does not match its digest fails every call as
// unavailable, through the catalog too.
func TestLookupChecksDigest(t *testing.T) {
	root := t.TempDir()
	connectorDir(t, root, misbehaveManifest, guest(t, "misbehave"))
	if err := os.WriteFile(filepath.Join(root, "misbehave", "0.0.1", "connector.wasm"), guest(t, "echo"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRuntimeAt(t, root, wasmrt.Config{})
	_, err := r.Execute(context.Background(), misbehave, call("echo", `{}`))
	wantCode(t, err, core.EConnectorUnavailable, "checksum mismatch")
}

// The compilation cache lives in <data dir>/wasm-cache, mode 0700, and a
// second runtime on the same data dir uses it.
func TestCompilationCache(t *testing.T) {
	data := t.TempDir()
	for round := range 2 {
		r := newRuntime(t, wasmrt.Config{DataDir: data})
		if _, err := r.Execute(context.Background(), watecho, call("echo", `{}`)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(data, wasmrt.CacheDir)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("cache folder: %v, %v; want mode 0700", st, err)
	}
	files := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatal("the cache folder holds no compiled module")
	}
}

// relay.http_request reaches only the manifest's egress hosts, with the
// operator's allow list, and follows no redirect to another host.
func TestHTTPEgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metadata" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("hello"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	base := "http://localhost:" + port

	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	get := func(r *wasmrt.Runtime, url string) *connectorv1.HttpResponse {
		t.Helper()
		raw, _ := proto.Marshal(&connectorv1.HttpRequest{Url: url})
		// misbehave's http action takes an encoded HttpRequest, not JSON:
		// marked validated, the host passes it on unchecked.
		out, err := r.Execute(context.Background(), misbehave, core.ActionCall{Action: "http", Input: raw, InputValidated: true})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		var resp connectorv1.HttpResponse
		if err := proto.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return &resp
	}

	r := newRuntime(t, wasmrt.Config{EgressAllow: loopback})
	if resp := get(r, base+"/"); resp.GetStatus() != 200 || string(resp.GetBody()) != "hello" {
		t.Fatalf("allowed host: %v", resp)
	}
	if resp := get(r, "http://not-declared.example.net/"); resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED {
		t.Fatalf("host not in egress: %v; want EGRESS_DENIED", resp)
	}
	if resp := get(r, base+"/metadata"); resp.GetStatus() != http.StatusFound || resp.GetError() != nil {
		t.Fatalf("redirect to 169.254.169.254: %v; want the 302, not followed", resp)
	}
	// Without the operator's allow list the loopback address is refused.
	r = newRuntime(t, wasmrt.Config{})
	if resp := get(r, base+"/"); resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED || !strings.Contains(resp.GetError().GetMessage(), "loopback") {
		t.Fatalf("loopback without --egress-allow: %v; want EGRESS_DENIED", resp)
	}
}

// Close waits for calls under way; later calls are unavailable.
func TestClose(t *testing.T) {
	r := newRuntime(t, wasmrt.Config{})
	if _, err := r.Execute(context.Background(), watecho, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Execute(context.Background(), watecho, call("echo", `{}`))
	wantCode(t, err, core.EConnectorUnavailable, "shutting down")
}

// LoadEntry loads a catalog entry ahead of its first call.
func TestLoadEntry(t *testing.T) {
	root := t.TempDir()
	connectorDir(t, root, echoManifest(t), guest(t, "echo"))
	cat, problems := catalog.Load(root)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	r, err := wasmrt.New(context.Background(), wasmrt.Config{}) // no Lookup: only what is loaded
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Execute(context.Background(), watecho, call("echo", `{}`))
	wantCode(t, err, core.ENotFound)
	for _, e := range cat.List() {
		if err := r.LoadEntry(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := r.Execute(context.Background(), watecho, call("echo", `{"x":1}`)); err != nil || string(out) != `{"x":1}` {
		t.Fatalf("Execute = %s, %v", out, err)
	}
}

// LoadEntries loads several entries at once and reports each; one that
// fails does not stop the others.
func TestLoadEntries(t *testing.T) {
	root := t.TempDir()
	connectorDir(t, root, echoManifest(t), guest(t, "echo"))
	connectorDir(t, root, misbehaveManifest, guest(t, "misbehave"))
	cat, problems := catalog.Load(root)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	// Changed after the catalog read its digest: refused at load.
	if err := os.WriteFile(filepath.Join(root, "misbehave", "0.0.1", catalog.WASMFile), guest(t, "echo"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := wasmrt.New(context.Background(), wasmrt.Config{}) // no Lookup: only what is loaded
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var mu sync.Mutex
	results := map[string]error{}
	r.LoadEntries(context.Background(), cat.List(), func(e *catalog.Entry, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		results[e.Ref.Name] = err
		if took <= 0 {
			t.Errorf("%s took %v", e.Ref, took)
		}
	})
	if len(results) != 2 || results["watecho"] != nil || !strings.Contains(fmt.Sprint(results["misbehave"]), "checksum") {
		t.Fatalf("results: %v; want watecho loaded and misbehave refused for its checksum", results)
	}
	if out, err := r.Execute(context.Background(), watecho, call("echo", `{"x":1}`)); err != nil || string(out) != `{"x":1}` {
		t.Fatalf("Execute = %s, %v", out, err)
	}
	_, err = r.Execute(context.Background(), misbehave, call("echo", `{}`))
	wantCode(t, err, core.ENotFound)

	// Again: what is loaded stays as it is, what failed is tried again.
	var again []string
	r.LoadEntries(context.Background(), cat.List(), func(e *catalog.Entry, _ time.Duration, _ error) {
		mu.Lock()
		defer mu.Unlock()
		again = append(again, e.Ref.Name)
	})
	if len(again) != 1 || again[0] != "misbehave" {
		t.Errorf("the second LoadEntries loaded %v; want misbehave alone", again)
	}
}

// A version installed from the registry has a package's name
// (publisher/name) and the manifest of the connector after the
// publisher: it loads, and a package whose name is another connector's
// does not.
func TestInstalledPackage(t *testing.T) {
	wasm := guest(t, "echo")
	sum := sha256.Sum256(wasm)
	path := filepath.Join(t.TempDir(), catalog.WASMFile)
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse([]byte(echoManifest(t)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := wasmrt.New(context.Background(), wasmrt.Config{Lookup: func(ref core.ConnectorRef) (*catalog.Entry, error) {
		return &catalog.Entry{Ref: core.ConnectorRef{Name: ref.Name, Version: ref.Version}, Package: ref.Name, Manifest: m,
			WASM: &catalog.Artifact{Path: path, SHA256: sum[:]}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ref := core.ConnectorRef{Name: "acme/" + m.Name, Version: m.Version, Runtime: core.RuntimeWASM}
	if out, err := r.Execute(context.Background(), ref, call("echo", `{"a":1}`)); err != nil || string(out) != `{"a":1}` {
		t.Fatalf("Execute(%s) = %s, %v", ref, out, err)
	}
	ref.Name = m.Name + "/other"
	_, err = r.Execute(context.Background(), ref, call("echo", `{}`))
	wantCode(t, err, core.EConnectorUnavailable, "its manifest is that of "+m.Name)
}
