// Package connectortest is the conformance kit for connector authors. Call
// Run from a `go test` of your own connector: it builds (or takes) the
// connector, starts it as a real plugin process, or as a real WASM module
// (Config.Runtime), the way a Relay host does, and checks that it keeps the
// protocol's promises: a manifest that parses and matches `spec` and
// `version`, schemas that compile, previews without side effects, outputs
// that match their schemas, typed errors and honoured deadlines. The last needs Config.Hang: a fixture that the kit
// points at a HangingPeer, a test peer that never answers.
package connectortest

import (
	"testing"

	"github.com/relayhq/relay/sdk/connector"
)

// Fixture is one example call of an action. The kit previews it, then
// executes it, so a fixture's execute may reach the author's own test peer
// (a local HTTP server, a test mailbox), never a production service.
type Fixture struct {
	// Name labels the fixture's subtest; the default is "<action>#<n>".
	Name string
	// Action is the action's name within the connector, e.g. "send".
	Action string
	// Input is the action's input: a value encoded with encoding/json, or
	// the JSON itself as a json.RawMessage. nil is the empty object.
	Input any
	// Config is the connection's non-secret config, as Input; Secrets are
	// its secret fields.
	Config  any
	Secrets map[string]string
	// WantError, if not zero, is the code execute must fail with (e.g.
	// connector.CodeRetryable for an unreachable target). Preview may then
	// succeed or fail with the same code.
	WantError connector.Code
}

// Config says which connector to check and how to call it. Set exactly one
// of Binary and Package.
type Config struct {
	// Runtime is the form to check: "native" (manifest.RuntimeNative, the
	// default) runs the connector as a plugin process; "wasm"
	// (manifest.RuntimeWASM) runs it as a WASM module in the test's own
	// process through sdk/wasmhost, as a Relay host does. To check both
	// forms, call Run once for each.
	Runtime string
	// Binary is the path of a built connector: the plugin binary, or for
	// Runtime "wasm" the .wasm module (the kit then cannot compare the
	// manifest with `spec wasm` or run `version`).
	Binary string
	// Package is the import path (or a ./relative path) of the connector's
	// main package; the kit builds it with `go build` in the test's folder,
	// and for Runtime "wasm" also with GOOS=wasip1 GOARCH=wasm
	// -buildmode=c-shared.
	Package string
	// Fixtures are example calls; every action needs at least one.
	Fixtures []Fixture
	// SideEffects, if set, counts the side effects the author can observe,
	// such as requests that reached a test server. No preview may change it.
	SideEffects func() int
	// Env is the connector process's whole environment (a Relay host passes
	// none of its own), e.g. "RELAY_EGRESS_ALLOW=127.0.0.1/32" to let it
	// reach a test server on the loopback address. A WASM module has no
	// environment: the kit reads RELAY_EGRESS_ALLOW from Env as the
	// operator's allow list, which the host's egress guard applies.
	Env []string
	// Hang, if set, lets the deadline check see whether the connector's
	// handlers honour their context. The kit starts a HangingPeer on
	// 127.0.0.1 and calls Hang with it for a fixture whose execute connects
	// to the peer and waits for its answer, which never comes: typically a
	// URL, or a host and port, pointing at it. Env must let the connector
	// reach 127.0.0.1. The kit previews and executes the fixture with a
	// deadline of 500 ms and fails the connector unless execute connected
	// to the peer, let go of every connection within 3 s of the deadline,
	// opened none after it, and answered RETRYABLE if it answered before
	// the transport reported the deadline. The fixture's WantError is not
	// used. Without Hang the check only sees that a call with a passed
	// deadline returns, which gRPC ensures whatever the handler does.
	Hang func(peer HangingPeer) Fixture
}

// Run checks the connector as a real plugin process (or a real WASM
// module, see Config.Runtime), one subtest per promise, and stops it when
// the test ends. Every failure names
// what the connector did and what the protocol expects.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	run(testingT{t}, cfg)
}

// tb is the part of *testing.T the kit uses. The kit's own tests pass a
// recorder that collects failures instead, to prove that the kit fails a
// connector that breaks a promise.
type tb interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	// Run runs f as a subtest and reports whether it passed.
	Run(name string, f func(t tb)) bool
}

type testingT struct{ *testing.T }

func (t testingT) Run(name string, f func(tb)) bool {
	return t.T.Run(name, func(t *testing.T) { f(testingT{t}) })
}
