package goplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/plugins/echo"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

var benchInput = json.RawMessage(`{"message":"hello","n":42,"tags":["a","b","c"]}`)

// BenchmarkNativeEcho measures one echo.echo call through the runtime and
// a live plugin process: gRPC over mutual TLS on a local socket, with the
// process sandboxed (auto, on a kernel that allows it) or not (off). ns/op
// is wall time per call across all callers; p50-ns is the median call.
func BenchmarkNativeEcho(b *testing.B) {
	for _, mode := range []SandboxMode{SandboxOff, SandboxAuto} {
		b.Run("sandbox="+string(mode), func(b *testing.B) {
			r, _ := newRuntime(b, Config{Sandbox: mode})
			call := core.ActionCall{Action: "echo", Input: benchInput, WorkspaceID: "ws_bench"}
			if _, err := r.Execute(context.Background(), echoRef, call); err != nil { // start the process
				b.Fatal(err)
			}
			benchCallers(b, func() error {
				_, err := r.Execute(context.Background(), echoRef, call)
				return err
			})
		})
	}
}

// BenchmarkNativeStart measures a process start: a fresh runtime's first
// call, which starts the process (checksum, fork and exec, handshake,
// Describe, and in the sandbox the namespaces and the Landlock rules),
// then the runtime's Close. echo declares no egress; sandboxconn does, so
// in the sandbox the host also lends it its network (Connector.OpenHost).
func BenchmarkNativeStart(b *testing.B) {
	cat, _ := testCatalog(b)
	for _, c := range []struct {
		ref  core.ConnectorRef
		call core.ActionCall
	}{
		{echoRef, core.ActionCall{Action: "echo", Input: benchInput, WorkspaceID: "ws_bench"}},
		{sandboxc, core.ActionCall{Action: "read_file", Input: json.RawMessage(`{"path":"/dev/null"}`), WorkspaceID: "ws_bench"}},
	} {
		for _, mode := range []SandboxMode{SandboxOff, SandboxAuto} {
			b.Run(c.ref.Name+"/sandbox="+string(mode), func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				for b.Loop() {
					start := time.Now()
					r := New(Config{Lookup: cat.Get, Sandbox: mode})
					_, err := r.Execute(context.Background(), c.ref, c.call)
					lat = append(lat, time.Since(start))
					r.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
				reportP50(b, lat)
			})
		}
	}
}

// BenchmarkNativeFetch measures an action that makes one HTTP request to a
// server on loopback: made by the process itself (off), or by the host for
// a sandboxed process (auto).
func BenchmarkNativeFetch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	input, _ := json.Marshal(map[string]string{"url": srv.URL})
	call := core.ActionCall{Action: "fetch", Input: input, WorkspaceID: "ws_bench"}
	for _, mode := range []SandboxMode{SandboxOff, SandboxAuto} {
		b.Run("sandbox="+string(mode), func(b *testing.B) {
			r, _ := newRuntime(b, Config{Sandbox: mode, EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
			check := func() error {
				out, err := r.Execute(context.Background(), sandboxc, call)
				if err == nil && !bytes.Contains(out, []byte(`"status":200`)) {
					err = fmt.Errorf("fetch: %s", out)
				}
				return err
			}
			if err := check(); err != nil { // start the process
				b.Fatal(err)
			}
			benchCallers(b, check)
		})
	}
}

// BenchmarkInProcessEcho is the same call on the SDK's server directly: the
// part of BenchmarkNativeEcho that is the connector's own work.
func BenchmarkInProcessEcho(b *testing.B) {
	s, err := connector.NewServer(echo.New(), manifest.RuntimeNative)
	if err != nil {
		b.Fatal(err)
	}
	req := &connectorv1.ActionRequest{Action: "echo", InputJson: benchInput, WorkspaceId: "ws_bench"}
	benchCallers(b, func() error {
		resp, err := s.Execute(context.Background(), req)
		if err == nil && resp.GetError() != nil {
			err = fmt.Errorf("%s", resp.GetError().GetMessage())
		}
		return err
	})
}

// benchCallers runs call b.N times in all, from exactly 1 and 8 goroutines,
// and reports the median call.
func benchCallers(b *testing.B, call func() error) {
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var next atomic.Int64
			var failed atomic.Pointer[error]
			var wg sync.WaitGroup
			lat := make([][]time.Duration, callers)
			b.ResetTimer()
			for i := range callers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						err := call()
						lat[i] = append(lat[i], time.Since(start))
						if err != nil {
							failed.CompareAndSwap(nil, &err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			reportP50(b, slices.Concat(lat...))
		})
	}
}

// reportP50 reports the median of lat as p50-ns.
func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
}
