package wasmhost_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/wasmhost"
)

// buildWAT builds a WebAssembly text file (or, when src holds a module,
// that text) with wat2wasm from Debian's wabt.
func buildWAT(tb testing.TB, src string) []byte {
	tb.Helper()
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
	wasm, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return wasm
}

var (
	wasmOnce   sync.Map // path -> []byte
	buildMutex sync.Mutex
)

// guest builds testdata/<name>.wat once per test binary.
func guest(tb testing.TB, name string) []byte {
	tb.Helper()
	buildMutex.Lock()
	defer buildMutex.Unlock()
	if w, ok := wasmOnce.Load(name); ok {
		return w.([]byte)
	}
	w := buildWAT(tb, filepath.Join("testdata", name+".wat"))
	wasmOnce.Store(name, w)
	return w
}

func newEngine(tb testing.TB, o wasmhost.Options) *wasmhost.Engine {
	tb.Helper()
	e, err := wasmhost.NewEngine(context.Background(), o)
	if err != nil {
		tb.Fatalf("NewEngine: %v", err)
	}
	tb.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func compile(tb testing.TB, e *wasmhost.Engine, wasm []byte) *wasmhost.Module {
	tb.Helper()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	tb.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func instantiate(tb testing.TB, m *wasmhost.Module) *wasmhost.Instance {
	tb.Helper()
	i, err := m.Instantiate(context.Background())
	if err != nil {
		tb.Fatalf("Instantiate: %v", err)
	}
	tb.Cleanup(func() { _ = i.Close(context.Background()) })
	return i
}

// logBuffer is a logger's output that tests can read while guests write.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(out *logBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "guest", Output: out, Level: hclog.Trace})
}
