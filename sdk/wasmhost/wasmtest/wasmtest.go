// Package wasmtest builds WebAssembly test guests written in text format
// (WAT), for the tests of the WASM host and of runtimes built on it.
package wasmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	builtMu sync.Mutex
	built   = map[string][]byte{}
)

// BuildWAT builds a WebAssembly text file, or a module given as text (src
// holds "(module"), with wat2wasm from Debian's wabt, and fails tb when
// wat2wasm is missing: the guests are part of the tests, never skipped. A
// source is built once per test binary.
func BuildWAT(tb testing.TB, src string) []byte {
	tb.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if w, ok := built[src]; ok {
		return w
	}
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		tb.Fatalf("wat2wasm is needed to build the test guests: apt-get install wabt (%v)", err)
	}
	dir := tb.TempDir()
	in := src
	if strings.Contains(src, "(module") {
		in = filepath.Join(dir, "guest.wat")
		if err := os.WriteFile(in, []byte(src), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	out := filepath.Join(dir, "guest.wasm")
	if msg, err := exec.Command("wat2wasm", "--debug-names", in, "-o", out).CombinedOutput(); err != nil {
		tb.Fatalf("wat2wasm %s: %v\n%s", in, err, msg)
	}
	w, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	built[src] = w
	return w
}
