package wasmrt_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/sdk/connectortest"
	"github.com/relayhq/relay/sdk/manifest"
)

// The hand-written echo guest, built from WebAssembly text with no SDK,
// passes the conformance kit: the proof that the ABI is language-neutral.
func TestEchoGuestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connector.wasm")
	if err := os.WriteFile(path, guest(t, "echo"), 0o644); err != nil {
		t.Fatal(err)
	}
	connectortest.Run(t, connectortest.Config{
		Runtime: manifest.RuntimeWASM,
		Binary:  path,
		Fixtures: []connectortest.Fixture{
			{Action: "echo", Input: map[string]any{"message": "hello", "n": 1}},
			{Name: "empty object", Action: "echo", Input: map[string]any{}},
		},
	})
}
