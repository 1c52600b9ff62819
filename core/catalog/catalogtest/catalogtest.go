// Package catalogtest builds connectors for tests: it compiles a plugin's
// main package into a connectors dir laid out as the catalog expects, with
// the manifest the binary prints and the binary's digest.
package catalogtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles pkg (an import path such as
// github.com/relayhq/relay/plugins/echo/cmd/echo) and installs it under
// dir/<name>/<version>/ as the catalog expects. It returns the version
// folder. Go's build cache makes repeated builds of one package cheap.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	return BuildWith(t, dir, pkg, "")
}

// BuildWith is Build with linker flags, e.g. "-X main.version=1.1.0" to
// make another version of a connector that takes its version from a
// variable.
func BuildWith(t testing.TB, dir, pkg, ldflags string) string {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "connector")
	cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", tmp, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s: %v", pkg, err)
	}
	spec, err := exec.Command(tmp, "spec").Output()
	if err != nil {
		t.Fatalf("%s spec: %v", pkg, err)
	}
	var m struct{ Name, Version string }
	if err := json.Unmarshal(spec, &m); err != nil {
		t.Fatalf("%s spec: %v", pkg, err)
	}
	vdir := filepath.Join(dir, m.Name, m.Version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(vdir, "connector"), data, 0o755)
	writeDigest(t, filepath.Join(vdir, "connector"), data)
	writeFile(t, filepath.Join(vdir, "manifest.json"), spec, 0o644)
	return vdir
}

// writeDigest writes path's digest file, as the catalog reads it.
func writeDigest(t testing.TB, path string, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	writeFile(t, path+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// BuildBoth is Build plus the same package compiled to WebAssembly
// (GOOS=wasip1 GOARCH=wasm, a reactor) beside it, as `make build` ships a
// connector with both forms: connector.wasm, its digest, and the manifest
// of the wasm form, which the native binary prints with `spec wasm`.
func BuildBoth(t testing.TB, dir, pkg string) string {
	t.Helper()
	vdir := Build(t, dir, pkg)
	wasm := filepath.Join(vdir, "connector.wasm")
	// The flags of `relay connector build` (and so of make build and of
	// the conformance kit): the bytes that ship, the same from any
	// checkout, so that a compilation cache shared between runs and
	// tests (tests use one in the user cache folder) holds them once.
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-buildmode=c-shared", "-o", wasm, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s for wasip1: %v", pkg, err)
	}
	spec, err := exec.Command(filepath.Join(vdir, "connector"), "spec", "wasm").Output()
	if err != nil {
		t.Fatalf("%s spec wasm: %v", pkg, err)
	}
	data, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	writeDigest(t, wasm, data)
	writeFile(t, filepath.Join(vdir, "manifest.json"), spec, 0o644)
	return vdir
}
