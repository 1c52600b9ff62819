package goplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/plugins/echo"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

var benchInput = json.RawMessage(`{"message":"hello","n":42,"tags":["a","b","c"]}`)

// BenchmarkNativeEcho measures one echo.echo call through the runtime and
// a live plugin process: gRPC over mutual TLS on a local socket. ns/op is
// wall time per call across all callers.
func BenchmarkNativeEcho(b *testing.B) {
	r, _ := newRuntime(b, Config{})
	call := core.ActionCall{Action: "echo", Input: benchInput, WorkspaceID: "ws_bench"}
	if _, err := r.Execute(context.Background(), echoRef, call); err != nil { // start the process
		b.Fatal(err)
	}
	benchCallers(b, func() error {
		_, err := r.Execute(context.Background(), echoRef, call)
		return err
	})
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

// benchCallers runs call b.N times in all, from exactly 1 and 8 goroutines.
func benchCallers(b *testing.B, call func() error) {
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var next atomic.Int64
			var failed atomic.Pointer[error]
			var wg sync.WaitGroup
			b.ResetTimer()
			for range callers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := call(); err != nil {
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
		})
	}
}
