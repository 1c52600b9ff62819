package wasmrt_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/sdk/connectortest"
)

// BenchmarkWasmEcho is a warm call of the hand-written echo guest through
// the runtime, as the actions engine makes it: 1 and 8 callers, a pool of
// as many instances, p50 and p99 latency.
func BenchmarkWasmEcho(b *testing.B) {
	benchEcho(b, func(callers int) (*wasmrt.Runtime, core.ConnectorRef) {
		return newRuntime(b, wasmrt.Config{PoolSize: callers}), watecho
	})
}

// BenchmarkGoEcho is the same for plugins/echo built as a WASM module from
// the source the native plugin is built from (the Go runtime in the guest,
// protobuf, the SDK's schema checks): the figure to set beside
// goplugin's BenchmarkNativeEcho and BenchmarkInProcessEcho. Compiled
// modules are kept in the user cache folder, shared with the tests.
func BenchmarkGoEcho(b *testing.B) {
	dir := b.TempDir()
	catalogtest.BuildBoth(b, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
	cache := connectortest.CompilationCacheDir()
	benchEcho(b, func(callers int) (*wasmrt.Runtime, core.ConnectorRef) {
		r := newRuntimeAt(b, dir, wasmrt.Config{PoolSize: callers, CompilationCacheDir: cache})
		return r, core.ConnectorRef{Name: "echo", Version: "1.0.0", Runtime: core.RuntimeWASM}
	})
}

func benchEcho(b *testing.B, runtime func(callers int) (*wasmrt.Runtime, core.ConnectorRef)) {
	for _, callers := range []int{1, 8} {
		name := "callers=1"
		if callers == 8 {
			name = "callers=8"
		}
		b.Run(name, func(b *testing.B) {
			r, watecho := runtime(callers)
			ctx := context.Background()
			c := call("echo", `{"message":"hello, world","n":42}`)
			c.InputValidated = true // as the actions engine calls, having checked the params
			// Load, and warm as many instances as callers: the figures are
			// of warm calls, not of instances starting.
			var warm sync.WaitGroup
			for range callers {
				warm.Go(func() {
					if _, err := r.Execute(ctx, watecho, c); err != nil {
						b.Error(err)
					}
				})
			}
			warm.Wait()
			lat := make([][]time.Duration, callers)
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range callers {
				n := b.N / callers
				if w < b.N%callers {
					n++
				}
				lat[w] = make([]time.Duration, 0, n)
				wg.Go(func() {
					for range n {
						start := time.Now()
						if _, err := r.Execute(ctx, watecho, c); err != nil {
							b.Error(err)
							return
						}
						lat[w] = append(lat[w], time.Since(start))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			if len(all) == 0 {
				return
			}
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// BenchmarkLoad loads the hand-written echo guest into a new runtime on a
// data dir whose compilation cache already holds it, and makes the first
// call: a restart, per module.
func BenchmarkLoad(b *testing.B) {
	benchLoad(b, func(cfg wasmrt.Config) (*wasmrt.Runtime, core.ConnectorRef) {
		return newRuntime(b, cfg), watecho
	})
}

// BenchmarkGoLoad is the same for plugins/echo built for wasip1: reading
// and checking the module's digest, metering it, wazero's decoding and
// validation of the cached module, and the first instance (the Go
// runtime's and the connector's start).
func BenchmarkGoLoad(b *testing.B) {
	dir := b.TempDir()
	catalogtest.BuildBoth(b, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
	benchLoad(b, func(cfg wasmrt.Config) (*wasmrt.Runtime, core.ConnectorRef) {
		return newRuntimeAt(b, dir, cfg), core.ConnectorRef{Name: "echo", Version: "1.0.0", Runtime: core.RuntimeWASM}
	})
}

func benchLoad(b *testing.B, runtime func(wasmrt.Config) (*wasmrt.Runtime, core.ConnectorRef)) {
	cfg := wasmrt.Config{DataDir: b.TempDir()}
	warm, ref := runtime(cfg)
	if _, err := warm.Execute(context.Background(), ref, call("echo", `{}`)); err != nil {
		b.Fatal(err)
	}
	_ = warm.Close()
	for b.Loop() {
		r, ref := runtime(cfg)
		if _, err := r.Execute(context.Background(), ref, call("echo", `{}`)); err != nil {
			b.Fatal(err)
		}
		_ = r.Close()
	}
}

// BenchmarkGoRestart is a server's restart with plugins/echo and
// plugins/webhook, built for wasip1, in its catalog and their compiled
// code in the cache: a new runtime loads both at once, as the server does
// at start (LoadEntries), each up to its first instance and its
// description checked against the catalog's manifest. It reports the wall
// time per module.
func BenchmarkGoRestart(b *testing.B) {
	dir := b.TempDir()
	catalogtest.BuildBoth(b, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
	catalogtest.BuildBoth(b, dir, "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	cat, problems := catalog.Load(dir)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	entries := cat.List()
	cfg := wasmrt.Config{DataDir: b.TempDir()}
	restart := func() {
		r, err := wasmrt.New(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		r.LoadEntries(context.Background(), entries, func(e *catalog.Entry, _ time.Duration, err error) {
			if err != nil {
				b.Errorf("%s: %v", e.Ref, err)
			}
		})
		_ = r.Close()
	}
	restart() // compiles into the cache
	for b.Loop() {
		restart()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*len(entries)), "ms/module")
}
