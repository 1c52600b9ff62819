package wasmhost_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connectortest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

// BenchmarkWasmEcho is a warm call of the hand-written echo guest through a
// pool: 1 and 8 callers, with p50 and p99 latency.
func BenchmarkWasmEcho(b *testing.B) {
	m := compile(b, newEngine(b, wasmhost.Options{}), guest(b, "echo"))
	req := action("echo", `{"message":"hello, world","n":42}`)
	req.InputValidated = true // as a server calls, having checked the params
	for _, callers := range []int{1, 8} {
		b.Run(map[int]string{1: "callers=1", 8: "callers=8"}[callers], func(b *testing.B) {
			p := wasmhost.NewPool(m, callers)
			defer p.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			lat := make([][]time.Duration, callers)
			var wg sync.WaitGroup
			b.ResetTimer()
			for c := range callers {
				n := b.N / callers
				if c < b.N%callers {
					n++
				}
				lat[c] = make([]time.Duration, 0, n)
				wg.Go(func() {
					for range n {
						start := time.Now()
						i, err := p.Get(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						resp, err := i.Execute(ctx, req)
						p.Put(i)
						if err != nil || len(resp.GetOutputJson()) == 0 {
							b.Errorf("Execute = %v, %v", resp, err)
							return
						}
						lat[c] = append(lat[c], time.Since(start))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportLatency(b, slices.Concat(lat...))
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkCompile compiles the echo guest in a new engine: cold (no
// cache), and from a warm compilation cache on disk.
func BenchmarkCompile(b *testing.B) {
	wasm := guest(b, "echo")
	ctx := context.Background()
	once := func(b *testing.B, dir string) {
		e, err := wasmhost.NewEngine(ctx, wasmhost.Options{CompilationCacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Compile(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		_ = e.Close(ctx)
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			once(b, "")
		}
	})
	b.Run("cached", func(b *testing.B) {
		dir := b.TempDir()
		once(b, dir) // fill the cache
		for b.Loop() {
			once(b, dir)
		}
	})
}

// BenchmarkInstantiate makes a fresh sandbox of the echo guest and closes it.
func BenchmarkInstantiate(b *testing.B) {
	benchInstantiate(b, compile(b, newEngine(b, wasmhost.Options{}), guest(b, "echo")))
}

// benchInstantiate starts and closes instances of m.
func benchInstantiate(b *testing.B, m *wasmhost.Module) {
	ctx := context.Background()
	for b.Loop() {
		i, err := m.Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		_ = i.Close(ctx)
	}
}

// BenchmarkBusyLoop measures the guest's spin of 200,000 iterations. It
// shows the cost of metering (meter.go), a fuel check in every iteration:
// a few nanoseconds an iteration, where wazero's WithCloseOnContextDone
// cost tens.
func BenchmarkBusyLoop(b *testing.B) {
	i := instantiate(b, compile(b, newEngine(b, wasmhost.Options{}), guest(b, "misbehave")))
	req := action("busy", `{}`)
	req.InputValidated = true
	for b.Loop() {
		if _, err := i.Execute(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstanceMemory reports what a warm instance of the echo guest
// costs: its linear memory plus the host's heap for it.
func BenchmarkInstanceMemory(b *testing.B) {
	benchInstanceMemory(b, compile(b, newEngine(b, wasmhost.Options{}), guest(b, "echo")), action("echo", `{}`), 100)
}

// BenchmarkGoInstanceMemory is the same for a Go-built guest (the SDK's
// test connector) after one call: the Go runtime's heap and stacks in
// linear memory are most of it.
func BenchmarkGoInstanceMemory(b *testing.B) {
	req := action("log", `{}`)
	req.InputValidated = true
	benchInstanceMemory(b, goGuest(b), req, 8)
}

// benchInstanceMemory starts n instances of m, makes one call req on each,
// and reports the host heap they hold and their linear memory, per
// instance.
func benchInstanceMemory(b *testing.B, m *wasmhost.Module, req *connectorv1.ActionRequest, n int) {
	ctx := context.Background()
	var before, after runtime.MemStats
	for b.Loop() {
		instances := make([]*wasmhost.Instance, 0, n)
		runtime.GC()
		runtime.ReadMemStats(&before)
		linear := 0
		for range n {
			i, err := m.Instantiate(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if resp, err := i.Execute(ctx, req); err != nil || resp.GetError() != nil {
				b.Fatal(err, resp.GetError())
			}
			instances = append(instances, i)
			linear += int(i.MemorySize())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-bytes/instance")
		b.ReportMetric(float64(linear)/float64(n), "linear-bytes/instance")
		for _, i := range instances {
			_ = i.Close(ctx)
		}
	}
}

// BenchmarkGoInstantiate starts a fresh instance of a Go-built guest (the
// SDK's test connector, sdk/connector/testdata/guest) and closes it: the Go
// runtime's start, the packages' initialization and the connector's
// NewServer, which a pool pays for each instance it adds.
func BenchmarkGoInstantiate(b *testing.B) {
	benchInstantiate(b, goGuest(b))
}

// goGuest builds and compiles the SDK's test connector for wasip1, with
// the compilation cache the SDK's tests share: a cold compile takes
// seconds.
func goGuest(b *testing.B) *wasmhost.Module {
	out := filepath.Join(b.TempDir(), "guest.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", out, "../connector/testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the guest: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	e := newEngine(b, wasmhost.Options{CompilationCacheDir: connectortest.CompilationCacheDir()})
	return compile(b, e, wasm)
}
