// Package hostdial holds the dialer of a connector process whose host
// makes its connections: a native connector started in a sandbox without
// a network of its own, once the host has lent it its own (the protocol's
// Connector.OpenHost). The SDK sets it; every egress guard in the process
// then dials through it. It is a package of its own, with no imports of
// the SDK, so that package egress can read it without an import cycle and
// without linking gRPC into a WASM module.
package hostdial

import (
	"context"
	"net"
	"sync/atomic"
)

// Func makes a connection on the process's behalf.
type Func func(ctx context.Context, network, address string) (net.Conn, error)

var current atomic.Pointer[Func]

// Set makes f the process's dialer; nil goes back to dialling directly.
func Set(f Func) {
	if f == nil {
		current.Store(nil)
		return
	}
	current.Store(&f)
}

// Get returns the process's dialer, nil when the process dials itself.
func Get() Func {
	if f := current.Load(); f != nil {
		return *f
	}
	return nil
}
