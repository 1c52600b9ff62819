package wasmhost

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/relayhq/relay/sdk/wasmhost/wasmtest"
)

// meterRuntime is a bare wazero runtime with the imports of
// testdata/meter.wat and a relay.__yield that counts its calls.
func meterRuntime(t testing.TB, yields *atomic.Int64) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2))
	t.Cleanup(func() { _ = rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(x int32) int32 { return x + 100 }).Export("plus100").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.NewHostModuleBuilder(relayModuleName).
		NewFunctionBuilder().WithFunc(func() int32 { yields.Add(1); return meterBudget }).Export(meterImport).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Host modules cannot export globals: "genv"."five" comes from a module.
	genv := wasmtest.BuildWAT(t, `(module (global (export "five") i32 (i32.const 5)))`)
	if _, err := rt.InstantiateWithConfig(ctx, genv, wazero.NewModuleConfig().WithName("genv")); err != nil {
		t.Fatal(err)
	}
	return rt
}

func instantiateMeter(t testing.TB, rt wazero.Runtime, wasm []byte, name string) api.Module {
	t.Helper()
	m, err := rt.InstantiateWithConfig(context.Background(), wasm, wazero.NewModuleConfig().WithName(name))
	if err != nil {
		t.Fatalf("instantiating %s: %v", name, err)
	}
	return m
}

func meterWAT(t testing.TB) []byte {
	t.Helper()
	return wasmtest.BuildWAT(t, filepath.Join("testdata", "meter.wat"))
}

// The metered module computes what the original computes, through every
// construct meter renumbers or steps over.
func TestMeterKeepsBehaviour(t *testing.T) {
	orig := meterWAT(t)
	metered, err := meter(orig)
	if err != nil {
		t.Fatalf("meter: %v", err)
	}
	var yields atomic.Int64
	rt := meterRuntime(t, &yields)
	a := instantiateMeter(t, rt, orig, "original")
	b := instantiateMeter(t, rt, metered, "metered")
	ctx := context.Background()
	for _, tc := range []struct {
		fn   string
		args []uint64
	}{
		{"g_now", nil}, {"sum", []uint64{1000}}, {"sum_params", []uint64{1000}}, {"fib", []uint64{20}},
		{"imported", []uint64{5}}, {"indirect", []uint64{0, 7}}, {"indirect", []uint64{1, 7}}, {"indirect", []uint64{2, 7}},
		{"indirect", []uint64{3, 7}}, {"from_global", []uint64{9}}, {"table_init", []uint64{4}}, {"ref_func", nil},
		{"table_ops", nil}, {"branch", []uint64{0}}, {"branch", []uint64{1}}, {"branch", []uint64{2}}, {"branch", []uint64{9}},
		{"select_typed", []uint64{0}}, {"select_typed", []uint64{1}}, {"simd", nil}, {"memory_ops", nil},
		{"consts", nil}, {"wide", nil}, {"saturate", nil},
	} {
		want, err := a.ExportedFunction(tc.fn).Call(ctx, tc.args...)
		if err != nil {
			t.Fatalf("original %s%v: %v", tc.fn, tc.args, err)
		}
		got, err := b.ExportedFunction(tc.fn).Call(ctx, tc.args...)
		if err != nil {
			t.Fatalf("metered %s%v: %v", tc.fn, tc.args, err)
		}
		if len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
			t.Errorf("%s%v = %v metered, %v originally", tc.fn, tc.args, got, want)
		}
	}
	if g := b.ExportedGlobal("g").Get(); g != 12 {
		t.Errorf("the exported global is %d after the start function; want 12", g)
	}
}

// Every entry into a function that calls others and every loop iteration
// costs one unit of fuel; the host is called once per meterBudget units.
func TestMeterCountsFuel(t *testing.T) {
	metered, err := meter(meterWAT(t))
	if err != nil {
		t.Fatal(err)
	}
	var yields atomic.Int64
	rt := meterRuntime(t, &yields)
	ctx := context.Background()
	m := instantiateMeter(t, rt, metered, "sum")
	yields.Store(0)
	// sum(n) calls nothing, so it checks only at its loop's start, n+1
	// times (the start function calls nothing either): 2*meterBudget+1
	// checks, two yields.
	if _, err := m.ExportedFunction("sum").Call(ctx, 2*meterBudget); err != nil {
		t.Fatal(err)
	}
	if got := yields.Load(); got != 2 {
		t.Errorf("sum(%d) yielded %d times; want 2", 2*meterBudget, got)
	}
	// fib(20) has no loop: 21,891 entries into $fib, which calls itself,
	// and the export's own, which calls $fib.
	m = instantiateMeter(t, rt, metered, "fib")
	yields.Store(0)
	if _, err := m.ExportedFunction("fib").Call(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if got := yields.Load(); got != 1 {
		t.Errorf("fib(20) yielded %d times; want 1", got)
	}
	// g_now neither calls nor loops: it is never charged.
	m = instantiateMeter(t, rt, metered, "leaf")
	yields.Store(0)
	for range meterBudget + 1 {
		if _, err := m.ExportedFunction("g_now").Call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := yields.Load(); got != 0 {
		t.Errorf("%d calls of g_now yielded %d times; want 0", meterBudget+1, got)
	}
}

// rawModule is a module with one function of type () -> () whose code is
// body (without its end): for code that wat2wasm would not write.
func rawModule(body ...byte) []byte {
	code := append(append([]byte{0}, body...), 0x0b) // no locals
	sec := appendU32(appendU32(nil, 1), uint32(len(code)))
	sec = append(sec, code...)
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, secType, 4, 1, 0x60, 0, 0, secFunction, 2, 1, 0, secCode)
	out = appendU32(out, uint32(len(sec)))
	return append(out, sec...)
}

// meter refuses what it cannot meter safely, saying why: a guest that
// imports relay.__yield, or whose code would reach the fuel global or the
// yield function by an index the original module does not have.
func TestMeterRefuses(t *testing.T) {
	if _, err := meter(rawModule(0x01)); err != nil { // nop
		t.Fatalf("meter of a valid raw module: %v", err)
	}
	full := meterWAT(t)
	for _, tc := range []struct {
		name string
		wasm []byte
		says string
	}{
		{"not wasm", []byte("not wasm at all"), "not a WebAssembly module"},
		{"version 2", append([]byte("\x00asm\x02\x00\x00\x00"), full[8:]...), "version 2 is not supported"},
		{"truncated", full[:len(full)/2], "unexpected end"},
		{"imports the yield", wasmtest.BuildWAT(t, `(module (import "relay" "__yield" (func (result i32))))`), "the host reserves"},
		{"sets a global it lacks", rawModule(0x41, 0x00, 0x24, 0x00), "global index 0 is out of range"},
		{"reads a global it lacks", rawModule(0x23, 0x00, 0x1a), "global index 0 is out of range"},
		{"calls a function it lacks", rawModule(0x10, 0x01), "function index 1 is out of range"},
		{"unknown instruction", rawModule(0x06), "unknown instruction 0x06"},
		{"unknown prefixed instruction", rawModule(0xfc, 0x20), "unknown instruction 0xfc 32"},
		{"body overruns", rawModule(0x41), "unexpected end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := meter(tc.wasm)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("meter = %v; want an error saying %q", err, tc.says)
			}
		})
	}
}

// FuzzMeter: meter never panics, and a module wazero accepts, metered, is
// a module wazero accepts. (That meter accepts every valid module is shown
// by the seeds and by the Go-built connectors the other tests run.)
func FuzzMeter(f *testing.F) {
	for _, name := range []string{"meter", "echo", "misbehave"} {
		f.Add(wasmtest.BuildWAT(f, filepath.Join("testdata", name+".wat")))
	}
	f.Add(rawModule(0x01))
	f.Add(rawModule(0x03, 0x40, 0x0c, 0x00, 0x0b))
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	ctx := context.Background()
	// A runtime per module: a runtime keeps every function type it has
	// seen.
	compiles := func(wasm []byte) error {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
		defer rt.Close(ctx)
		_, err := rt.CompileModule(ctx, wasm)
		return err
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := meter(wasm)
		// Only a module meter accepts is given to wazero: meter is the
		// first to read an untrusted module, and refuses, for one, vectors
		// longer than their bytes, for which wazero would reserve room.
		if err != nil || compiles(wasm) != nil {
			return
		}
		if err := compiles(out); err != nil {
			t.Fatalf("the metered module does not compile: %v", err)
		}
		if bytes.Equal(out, wasm) {
			t.Fatal("meter changed nothing")
		}
	})
}
