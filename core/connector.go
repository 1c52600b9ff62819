package core

import (
	"context"
	"encoding/json"
	"strings"
)

// ConnectorRef names one version of a connector and, for a call, the form
// that runs it.
type ConnectorRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Runtime is RuntimeNative or RuntimeWASM; empty where the form does
	// not matter (the catalog's entries).
	Runtime string `json:"runtime,omitempty"`
}

func (r ConnectorRef) String() string { return r.Name + "@" + r.Version }

// ManifestName is the name the version's manifest carries: Name, or for
// a registry package's ref (publisher/name) the part after the slash.
func (r ConnectorRef) ManifestName() string {
	return r.Name[strings.LastIndexByte(r.Name, '/')+1:]
}

// The forms a connector version can ship in.
const (
	RuntimeNative = "native" // a plugin process (go-plugin)
	RuntimeWASM   = "wasm"   // a WebAssembly module, sandboxed in process
)

// FormRunner is a ConnectorRuntime that says which forms it runs. A
// runtime that is not one runs the native form only.
type FormRunner interface {
	Runs(form string) bool
}

// Runs reports whether rt runs connectors in the form runtime.
func Runs(rt ConnectorRuntime, runtime string) bool {
	if f, ok := rt.(FormRunner); ok {
		return f.Runs(runtime)
	}
	return runtime == RuntimeNative
}

// RuntimeMux runs each call on the runtime of the call's form.
type RuntimeMux map[string]ConnectorRuntime

// Runs reports whether the mux has a runtime for the form.
func (m RuntimeMux) Runs(form string) bool { return m[form] != nil }

func (m RuntimeMux) runtime(ref ConnectorRef) (ConnectorRuntime, error) {
	form := ref.Runtime
	if form == "" {
		form = RuntimeNative
	}
	if rt, ok := m[form]; ok {
		return rt, nil
	}
	return nil, Errorf(EConnectorUnavailable, "connector %s: this server cannot run the %s form", ref, form)
}

func (m RuntimeMux) CheckConfig(ctx context.Context, ref ConnectorRef, conn ConnectionData) error {
	rt, err := m.runtime(ref)
	if err != nil {
		return err
	}
	return rt.CheckConfig(ctx, ref, conn)
}

func (m RuntimeMux) Preview(ctx context.Context, ref ConnectorRef, call ActionCall) (json.RawMessage, error) {
	rt, err := m.runtime(ref)
	if err != nil {
		return nil, err
	}
	return rt.Preview(ctx, ref, call)
}

func (m RuntimeMux) Execute(ctx context.Context, ref ConnectorRef, call ActionCall) (json.RawMessage, error) {
	rt, err := m.runtime(ref)
	if err != nil {
		return nil, err
	}
	return rt.Execute(ctx, ref, call)
}

// ConnectionData is what a call carries of a workspace's connection: the
// config and, for the length of the call, the decrypted secrets.
type ConnectionData struct {
	Config  json.RawMessage
	Secrets map[string]string
}

// ActionCall is one call of a connector's action.
type ActionCall struct {
	Action     string // the name within the connector, e.g. "send"
	Input      json.RawMessage
	Connection ConnectionData
	RunID      string
	// IdempotencyKey is the run's ConnectorKey: scoped to the workspace,
	// the same on every attempt and retry of one request.
	IdempotencyKey string
	WorkspaceID    string
	// Begin, when set, is called once the runtime holds what the call
	// needs (an instance of the module, a live plugin process), right
	// before the call is sent; an error from it ends the call unsent and
	// Execute returns that error. The call's deadline starts after Begin:
	// waiting for an instance or process does not spend it, and is
	// bounded by ctx alone.
	Begin func() error
	// InputValidated says that Input has been validated against Action's
	// input schema in the installed manifest of exactly the connector
	// version the call goes to (the ref's name and version), so the
	// connector may skip its own check. Set it only then: on any other
	// call it lets unchecked input through to the connector's handler.
	InputValidated bool
	// TraceParent is the W3C traceparent of the call's span when the
	// host traces ("" otherwise): the connector continues the trace, and
	// its outbound requests carry it.
	TraceParent string
}

// ConnectorRuntime runs connector versions, whatever their form. Errors are
// *Error with the connector codes (EInvalidParams, EConnectorCrashed, …).
type ConnectorRuntime interface {
	// CheckConfig asks the connector whether a connection's config works.
	CheckConfig(ctx context.Context, ref ConnectorRef, conn ConnectionData) error
	// Preview says what Execute would do; it has no side effects.
	Preview(ctx context.Context, ref ConnectorRef, call ActionCall) (json.RawMessage, error)
	// Execute performs the action.
	Execute(ctx context.Context, ref ConnectorRef, call ActionCall) (json.RawMessage, error)
}

// ConnectorSource is where a server finds connector versions besides its
// connectors dir: the packages installed from the registry. What it holds
// changes while the server runs.
type ConnectorSource interface {
	// Installed lists the connectors a workspace installed, by the name
	// it uses each under, at the version its lock pins.
	Installed(ctx context.Context, workspaceID string) ([]InstalledConnector, error)
	// Files returns where a connector version's files are on this server
	// (unpacking its package first when they are not) and the digests
	// they must have; ENotFound when the source has no such version.
	Files(ctx context.Context, ref ConnectorRef) (*ConnectorFiles, error)
}

// InstalledConnector is a connector a workspace installed.
type InstalledConnector struct {
	// Name is the workspace's name for it: its action ids are
	// <Name>.<action>.
	Name string
	// Ref names the package (publisher/name) and the locked version.
	Ref ConnectorRef
	// Yanked is why the locked version was yanked, when it was.
	Yanked string
}

// ConnectorFiles are the files of a connector version on this server.
type ConnectorFiles struct {
	Ref      ConnectorRef // Name is the package's
	Dir      string
	Manifest []byte
	// Native is the plugin binary for this server's os/arch, WASM the
	// module; nil when the version has none.
	Native, WASM *ArtifactFile
}

// ArtifactFile is a file to run and the SHA-256 it must have, checked
// before every start or load.
type ArtifactFile struct {
	Path   string
	SHA256 []byte
}
