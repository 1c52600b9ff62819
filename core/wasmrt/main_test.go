package wasmrt_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/sdk/wasmhost/wasmtest"
)

// The hand-written guests of sdk/wasmhost's tests.
const guests = "../../sdk/wasmhost/testdata"

// buildWAT builds a WAT guest (wasmtest.BuildWAT).
func buildWAT(tb testing.TB, src string) []byte { return wasmtest.BuildWAT(tb, src) }

func guest(tb testing.TB, name string) []byte {
	return buildWAT(tb, filepath.Join(guests, name+".wat"))
}

// connectorDir writes a connector version's folder as the catalog reads
// it: manifest.json, connector.wasm and its digest.
func connectorDir(tb testing.TB, root string, manifestJSON string, wasm []byte) {
	tb.Helper()
	var m struct{ Name, Version string }
	if err := json.Unmarshal([]byte(manifestJSON), &m); err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(root, m.Name, m.Version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	for name, data := range map[string][]byte{
		catalog.ManifestFile:                    []byte(manifestJSON),
		catalog.WASMFile:                        wasm,
		catalog.WASMFile + catalog.DigestSuffix: []byte(hex.EncodeToString(sum[:]) + "  connector.wasm\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// misbehaveManifest declares the misbehave guest's actions, the loop with
// a 1 s timeout: the manifest misbehave.wat describes.
const misbehaveManifest = `{"name":"misbehave","version":"0.0.1","runtime":"wasm","protocol":1,"title":"Misbehave",
 "egress":["localhost","api.example.com"],
 "actions":[
  {"name":"echo","title":"Echo","input_schema":{"type":"object"},"output_schema":true,"side_effect":"none"},
  {"name":"loop","title":"Loop","input_schema":{"type":"object"},"output_schema":true,"side_effect":"none","timeout_seconds":1},
  {"name":"trap","title":"Trap","input_schema":{"type":"object"},"output_schema":true,"side_effect":"none"},
  {"name":"grow","title":"Grow","input_schema":{"type":"object"},"output_schema":true,"side_effect":"none"},
  {"name":"busy","title":"Busy","input_schema":{"type":"object"},"output_schema":true,"side_effect":"none"},
  {"name":"http","title":"HTTP","input_schema":{"type":"object"},"output_schema":true,"side_effect":"write"}]}`

var (
	misbehave = core.ConnectorRef{Name: "misbehave", Version: "0.0.1", Runtime: core.RuntimeWASM}
	watecho   = core.ConnectorRef{Name: "watecho", Version: "1.0.0", Runtime: core.RuntimeWASM}
)

// newRuntime returns a runtime over a catalog holding the misbehave and
// echo guests.
func newRuntime(tb testing.TB, cfg wasmrt.Config) *wasmrt.Runtime {
	tb.Helper()
	root := tb.TempDir()
	connectorDir(tb, root, misbehaveManifest, guest(tb, "misbehave"))
	connectorDir(tb, root, echoManifest(tb), guest(tb, "echo"))
	return newRuntimeAt(tb, root, cfg)
}

// echoManifest is the manifest the echo guest describes, read from its
// source.
func echoManifest(tb testing.TB) string {
	src, err := os.ReadFile(filepath.Join(guests, "echo.wat"))
	if err != nil {
		tb.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, `(data (i32.const 1024) "`) + len(`(data (i32.const 1024) "`)
	end := strings.Index(s[start:], "\")\n")
	return strings.ReplaceAll(s[start:start+end], `\"`, `"`)
}

func wantCode(tb testing.TB, err error, code string, says ...string) {
	tb.Helper()
	if got := core.ErrorCode(err); got != code {
		tb.Fatalf("error = %v (code %q); want code %q", err, got, code)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			tb.Errorf("error %q does not say %q", err, s)
		}
	}
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newRuntimeAt returns a runtime over the catalog in root.
func newRuntimeAt(tb testing.TB, root string, cfg wasmrt.Config) *wasmrt.Runtime {
	tb.Helper()
	cat, problems := catalog.Load(root)
	if len(problems) > 0 {
		tb.Fatalf("catalog: %v", problems)
	}
	cfg.Lookup = cat.Get
	r, err := wasmrt.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}
