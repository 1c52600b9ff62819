package wasmhost_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/wasmhost"
)

// minimal is a module that follows the ABI, with its pieces replaceable
// by the cases below.
const minimal = `(module
  IMPORTS
  (memory (export "memory") MEMORY)
  (func (export "relay_abi_version") (result i32) (i32.const VERSION))
  (func (export "relay_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "relay_free") (param i32 i32))
  (func (export "relay_describe") (param i32 i32) (result i64) (i64.const 0))
  (func (export "relay_check_config") (param i32 i32) (result i64) (i64.const 0))
  (func (export "relay_preview") (param i32 i32) (result i64) (i64.const 0))
  (func (export "relay_execute") (param i32 i32) (result i64) (i64.const 0))
  EXTRA
)`

// module is minimal with the placeholders given (pairs of placeholder and
// text) replaced, and the others emptied or set to their defaults.
func module(repl ...string) string {
	src := strings.NewReplacer(repl...).Replace(minimal)
	return strings.NewReplacer("IMPORTS", "", "MEMORY", "1", "VERSION", "1", "EXTRA", "").Replace(src)
}

// Compile refuses a module that breaks the ABI, saying how.
func TestCompileRefuses(t *testing.T) {
	e := newEngine(t, wasmhost.Options{MemoryLimitPages: 64})
	if _, err := e.Compile(context.Background(), buildWAT(t, module())); err != nil {
		t.Fatalf("the minimal module: %v", err)
	}
	for _, tc := range []struct {
		name, src, says string
	}{
		{"memory minimum over the ceiling", module("MEMORY", "65"), "memory's declared minimum is over the host's ceiling of 64 pages (4 MiB)"},
		{"command", module("EXTRA", `(func (export "_start"))`), "it is a command"},
		{"missing export", strings.Replace(module(), `(func (export "relay_preview") (param i32 i32) (result i64) (i64.const 0))`, "", 1),
			"it does not export the function relay_preview(i32, i32) -> (i64)"},
		{"wrong signature", strings.Replace(module(), `(func (export "relay_free") (param i32 i32))`, `(func (export "relay_free") (param i32))`, 1),
			"its export relay_free is (i32) -> (), not (i32, i32) -> ()"},
		{"unknown relay import", module("IMPORTS", `(import "relay" "nope" (func (param i32)))`), "it imports relay.nope, which the host does not provide"},
		{"unknown module", module("IMPORTS", `(import "env" "f" (func))`), `it imports env.f, from module "env", which the host does not provide`},
		{"import with the wrong signature", module("IMPORTS", `(import "relay" "log" (func (param i32 i32)))`), "it imports relay.log as (i32, i32) -> (), but the host's is (i32, i32, i32) -> ()"},
		{"no memory export", strings.Replace(module(), `(memory (export "memory") 1)`, `(memory 1)`, 1), `it does not export its memory as "memory"`},
		{"bad _initialize", module("EXTRA", `(func (export "_initialize") (param i32))`), "its export _initialize is (i32) -> (), not () -> ()"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Compile(context.Background(), buildWAT(t, tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Compile = %v; want an error saying %q", err, tc.says)
			}
		})
	}
	if _, err := e.Compile(context.Background(), []byte("not wasm")); err == nil || !strings.Contains(err.Error(), "not a WebAssembly module") {
		t.Fatalf("Compile of garbage = %v", err)
	}
}

// Instantiate refuses a module of another ABI version, and one whose
// _initialize traps.
func TestInstantiateRefuses(t *testing.T) {
	e := newEngine(t, wasmhost.Options{})
	m := compile(t, e, buildWAT(t, module("VERSION", "2")))
	if _, err := m.Instantiate(context.Background()); err == nil || !strings.Contains(err.Error(), "ABI version 2; this host speaks version 1") {
		t.Fatalf("Instantiate = %v", err)
	}
	m = compile(t, e, buildWAT(t, module("EXTRA", `(func (export "_initialize") unreachable)`)))
	_, err := m.Instantiate(context.Background())
	wantError(t, err, wasmhost.KindCrashed, "during _initialize", "unreachable")
}

// Compiling the same bytes twice shares the compiled code; closing one
// Module leaves the other usable.
func TestCompileTwice(t *testing.T) {
	e := newEngine(t, wasmhost.Options{})
	wasm := guest(t, "echo")
	a, b := compile(t, e, wasm), compile(t, e, wasm)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Instantiate(context.Background()); err == nil {
		t.Fatal("a closed module instantiated")
	}
	i := instantiate(t, b)
	if _, err := i.Execute(context.Background(), action("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
}

// The compilation cache is a 0700 folder that a second engine reuses.
func TestCompilationCache(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data", "wasm-cache")
	wasm := guest(t, "echo")
	for round := range 2 {
		e := newEngine(t, wasmhost.Options{CompilationCacheDir: dir})
		i := instantiate(t, compile(t, e, wasm))
		if _, err := i.Execute(ctx, action("echo", `{}`)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		_ = e.Close(ctx)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("the cache folder has mode %s; want 0700", st.Mode().Perm())
	}
	var files int
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Error("the cache folder holds no compiled module")
	}

	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	newEngine(t, wasmhost.Options{CompilationCacheDir: loose})
	if st, err := os.Stat(loose); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("a 0755 cache folder was left %v (%v); want 0700", st.Mode().Perm(), err)
	}
}

// The metered form of a module is kept next to the compiled code, read
// back by the next engine, and metered again when the file is damaged.
func TestMeteredCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	echo := guest(t, "echo")
	v2 := buildWAT(t, module("VERSION", "2"))
	kept := func(wasm []byte) string {
		t.Helper()
		sum := sha256.Sum256(wasm)
		paths, _ := filepath.Glob(filepath.Join(dir, "relay-metered-v*", hex.EncodeToString(sum[:])+".wasm"))
		if len(paths) != 1 {
			t.Fatalf("%d metered files for the module; want 1", len(paths))
		}
		return paths[0]
	}
	run := func(want string) {
		t.Helper()
		e := newEngine(t, wasmhost.Options{CompilationCacheDir: dir})
		defer e.Close(ctx)
		m, err := e.Compile(ctx, echo)
		if err != nil {
			t.Fatal(err)
		}
		i, err := m.Instantiate(ctx)
		if want != "" {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("instantiating: %v; want %q", err, want)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := i.Execute(ctx, action("echo", `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	run("")
	path := kept(echo)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Whatever the file holds, if whole, is what is compiled: here the
	// metered form of another module, which speaks ABI version 2.
	e := newEngine(t, wasmhost.Options{CompilationCacheDir: dir})
	compile(t, e, v2)
	other, err := os.ReadFile(kept(v2))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, other, 0o600); err != nil {
		t.Fatal(err)
	}
	run("version 2")

	// Damaged or cut short: metered again, and the file rewritten.
	for _, damaged := range [][]byte{
		append(append([]byte{}, good[:len(good)/2]...), append([]byte{good[len(good)/2] ^ 1}, good[len(good)/2+1:]...)...),
		good[:3],
		nil,
	} {
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		run("")
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, good) {
			t.Fatalf("the damaged file was not rewritten (%d bytes, %v)", len(got), err)
		}
	}
}

// A new engine removes the metered modules of other meter versions and
// temporary files left by a writer that died, and keeps the rest: the
// current version's modules, a temporary file young enough to be another
// writer's, and what it does not know.
func TestMeteredCachePruned(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, age time.Duration) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		return path
	}
	gone := []string{
		write("relay-metered-v0/aa.wasm", 0),
		write("relay-metered-v1/.metered-123", 2*time.Hour),
	}
	kept := []string{
		write("relay-metered-v1/aa.wasm", 2*time.Hour),
		write("relay-metered-v1/.metered-456", time.Minute),
		write("relay-metered-vx/aa.wasm", 0),
		write("other/aa.wasm", 0),
	}
	newEngine(t, wasmhost.Options{CompilationCacheDir: dir})
	for _, p := range gone {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; want it removed", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "relay-metered-v0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the folder of meter version 0 is still there (%v)", err)
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
}

// ModuleOptions.SHA256 refuses bytes with another digest, before
// compiling them, and lets the right ones through.
func TestCompileChecksDigest(t *testing.T) {
	e := newEngine(t, wasmhost.Options{})
	wasm := guest(t, "echo")
	sum := sha256.Sum256(wasm)
	other := sha256.Sum256([]byte("another module"))
	_, err := e.CompileWith(context.Background(), wasm, wasmhost.ModuleOptions{SHA256: other[:]})
	var digest *wasmhost.DigestError
	if !errors.As(err, &digest) || !bytes.Equal(digest.Got, sum[:]) || !bytes.Equal(digest.Want, other[:]) {
		t.Fatalf("compiling with the wrong digest: %v; want a DigestError", err)
	}
	m, err := e.CompileWith(context.Background(), wasm, wasmhost.ModuleOptions{SHA256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Close(context.Background())
}

// Modules compile at the same time, the same bytes once: every caller
// gets a module, or the compile's error, and a failed compile is tried
// again by the next caller.
func TestCompileConcurrently(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, wasmhost.Options{})
	good := [][]byte{guest(t, "echo"), guest(t, "misbehave"), buildWAT(t, module())}
	bad := buildWAT(t, module("(export \"relay_execute\")", ""))
	var wg sync.WaitGroup
	mods := make(chan *wasmhost.Module, 8*len(good))
	for range 8 {
		for _, wasm := range good {
			wg.Go(func() {
				m, err := e.Compile(ctx, wasm)
				if err != nil {
					t.Error(err)
					return
				}
				mods <- m
			})
		}
		wg.Go(func() {
			if _, err := e.Compile(ctx, bad); err == nil || !strings.Contains(err.Error(), "relay_execute") {
				t.Errorf("a module without relay_execute: %v", err)
			}
		})
	}
	wg.Wait()
	close(mods)
	for m := range mods {
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Compile(ctx, bad); err == nil {
		t.Error("the bad module compiled the second time")
	}
	i := instantiate(t, compile(t, e, good[0]))
	if _, err := i.Execute(ctx, action("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
}

// A start section that calls host functions runs before the host knows
// the instance: log does nothing, http_request fails with -1, and the
// instance starts.
func TestStartSectionCallsHost(t *testing.T) {
	src := module(
		"IMPORTS", `(import "relay" "log" (func $log (param i32 i32 i32)))
  (import "relay" "http_request" (func $http (param i32 i32) (result i32)))`,
		"EXTRA", `(func $start
    (call $log (i32.const 3) (i32.const 0) (i32.const 4))
    (if (i32.ne (call $http (i32.const 0) (i32.const 4)) (i32.const -1)) (then unreachable)))
  (start $start)`)
	i := instantiate(t, compile(t, newEngine(t, wasmhost.Options{}), buildWAT(t, src)))
	if _, err := i.Describe(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// Closing the engine while modules compile waits for them: each compile
// ends with a module or an error, never a crash.
func TestCloseWhileCompiling(t *testing.T) {
	ctx := context.Background()
	wasm := guest(t, "misbehave")
	for range 20 {
		e, err := wasmhost.NewEngine(ctx, wasmhost.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if m, err := e.Compile(ctx, wasm); err == nil {
					_ = m.Close(ctx)
				} else if !strings.Contains(err.Error(), "closed") {
					t.Errorf("compiling while the engine closes: %v", err)
				}
			})
		}
		if err := e.Close(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if _, err := e.Compile(ctx, wasm); err == nil {
			t.Fatal("a closed engine compiled")
		}
	}
}
