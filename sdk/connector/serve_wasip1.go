//go:build wasip1

//lint:file-ignore U1000 server is used by the go:wasmexport functions, which staticcheck does not count as used.

package connector

import (
	"context"
	"net/netip"
	_ "unsafe" // for go:linkname

	"github.com/relayhq/relay/sdk/manifest"
)

// A connector built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared is a
// WASM reactor (docs/wasm-abi.md): the host runs the package inits, then
// calls the module's relay_* exports (abi_wasip1.go), and never runs main.
// So that one main.go serves both forms unchanged, `func main() {
// connector.Serve(New()) }`, the host's first call (relay_abi_version) runs
// main itself, and Serve, built for wasip1, only records the connector and
// returns.

// mainMain is the program's main.main. A reactor's runtime links it but does
// not run it.
//
//go:linkname mainMain main.main
func mainMain()

var (
	// served is the connector Serve was given; nil until main has run.
	served *Server
	// callCtx is the context of every action call: a module's calls have
	// no deadline of their own (the host enforces it) and no other values,
	// so one serves them all.
	callCtx context.Context
	// mainRan says main was run, so that it runs once even when it does not
	// call Serve.
	mainRan bool
)

// Serve is a connector's whole main. Built for wasip1 it makes the
// connector the one this module serves through the WASM ABI, with
// "runtime": "wasm" in its manifest, and returns. A declaration NewServer
// refuses panics, which fails the instance's start (the call that ran
// main) as a crash, with the reason in the host's log.
func Serve(c *Connector) {
	s, err := NewServer(c, manifest.RuntimeWASM)
	if err != nil {
		panic(err)
	}
	served = s
	callCtx = s.callContext(context.Background())
}

// server returns the connector to call, running main the first time.
func server() *Server {
	if served == nil && !mainRan {
		mainRan = true
		mainMain()
	}
	if served == nil {
		panic("connector: main did not call connector.Serve, so this module serves no connector")
	}
	return served
}

// operatorAllow lets the guard in the module pass every address: a module
// has no environment, so it cannot know the operator's exceptions, and it
// dials nothing itself. The host checks the manifest's egress and every
// address it dials (relay.http_request), with the operator's exceptions.
func operatorAllow() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
}
