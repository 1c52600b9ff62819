package wasmhost_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/wasmhost"
	"github.com/relayhq/relay/sdk/wasmhost/wasmtest"
)

// buildWAT builds a WAT guest (wasmtest.BuildWAT).
func buildWAT(tb testing.TB, src string) []byte { return wasmtest.BuildWAT(tb, src) }

// guest builds testdata/<name>.wat.
func guest(tb testing.TB, name string) []byte {
	return buildWAT(tb, filepath.Join("testdata", name+".wat"))
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
