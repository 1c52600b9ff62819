package connectortest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

// buildWasm builds a connector's main package as a WASM module, as `make
// build` and docs/authoring.md do.
func buildWasm(t tb, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "connector.wasm")
	// The flags of `relay connector build`: the kit runs the bytes that
	// are packed and shipped, the same from any checkout, so the
	// compilation cache in the user cache folder holds them once, for the
	// kit and for a server given that cache.
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -ldflags='-s -w' -buildmode=c-shared %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// startWasm runs a module as a Relay host does: in process on
// sdk/wasmhost, an instance per call at a time (a pool of one), with the
// egress policy of its manifest and the operator's allow list, which the
// kit takes from RELAY_EGRESS_ALLOW in env (a module itself gets no
// environment). nativePath, when not empty, is the native build of the
// same source, for `spec wasm` and `version`. Everything is closed when
// the test ends.
func startWasm(t tb, path, nativePath string, env []string) *process {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the module: %v", err)
	}
	allow, err := egress.ParseAllow(envValue(env, protocol.EnvEgressAllow))
	if err != nil {
		t.Fatalf("connectortest: Config.Env: %v", err)
	}
	logs := &logWriter{t: t}
	ctx := context.Background()
	engine, err := wasmhost.NewEngine(ctx, wasmhost.Options{
		// Compiling a Go module takes seconds; the next run reuses it.
		CompilationCacheDir: CompilationCacheDir(),
		// The module's log lines, stdout and stderr land in the test log,
		// shown when a test fails or with -v.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "connector", Output: logs, Level: hclog.Trace}),
	})
	if err != nil {
		t.Fatalf("starting the wasm engine: %v", err)
	}
	t.Cleanup(func() {
		_ = engine.Close(ctx)
		logs.close()
	})

	// The egress policy needs the manifest's hosts: ask the module itself,
	// with a policy that refuses everything meanwhile.
	probe, err := engine.CompileWith(ctx, wasm, wasmhost.ModuleOptions{Egress: egress.New(nil, nil)})
	if err != nil {
		t.Fatalf("loading %s as a Relay WASM connector: %v", path, err)
	}
	m, err := describeModule(ctx, probe)
	if err != nil {
		_ = probe.Close(ctx)
		t.Fatalf("%s: %v", path, err)
	}
	// Compiled while the probe holds the compiled code, which is reused.
	// With the manifest, the host validates inputs, as a Relay host does.
	mod, err := engine.CompileWith(ctx, wasm, wasmhost.ModuleOptions{Egress: egress.New(m.Egress, allow), Manifest: m})
	_ = probe.Close(ctx)
	if err != nil {
		t.Fatalf("loading %s as a Relay WASM connector: %v", path, err)
	}
	pool := wasmhost.NewPool(mod, 1)
	t.Cleanup(func() {
		_ = pool.Close(ctx)
		_ = mod.Close(ctx)
	})
	p := &process{path: nativePath, env: env, rpc: pool.Client(), wasm: path}
	p.warm = func() error { return warmUp(pool) }
	return p
}

// warmUp leaves a warm instance in the pool, one that has served a call, as
// a Relay host keeps warm instances between calls: a call with a short
// deadline then measures the handler, not the module's start (the Go
// runtime's and the packages' initialization take a good part of 500 ms on
// a loaded machine or under the race detector).
func warmUp(pool *wasmhost.Pool) error {
	ctx, cancel := context.WithTimeout(context.Background(), defaultCallTimeout)
	defer cancel()
	inst, err := pool.Get(ctx)
	if err != nil {
		return err
	}
	_, err = inst.Describe(ctx, &connectorv1.DescribeRequest{})
	pool.Put(inst)
	return err
}

// describeModule reads a module's manifest from a fresh instance.
func describeModule(ctx context.Context, mod *wasmhost.Module) (*manifest.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultCallTimeout)
	defer cancel()
	inst, err := mod.Instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("instantiating: %w", err)
	}
	defer inst.Close(ctx)
	resp, err := inst.Describe(ctx, &connectorv1.DescribeRequest{})
	if err != nil {
		return nil, fmt.Errorf("describing the connector: %w", err)
	}
	m, err := manifest.Parse(resp.GetManifestJson())
	if err != nil {
		return nil, fmt.Errorf("the manifest from Describe does not parse: %w", err)
	}
	return m, nil
}

// envValue returns the value of name in env, a list of "name=value".
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// CompilationCacheDir is the folder where the kit keeps compiled modules
// between test runs, "" (no cache) when the user has no cache folder.
// Other tests that compile the same modules may share it: a cold compile
// of a Go-built module takes seconds, minutes under the race detector.
func CompilationCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "relay", "connectortest-wasm")
}
