package core

// Isolation says what a connector version's code is kept from where it
// runs, as the runtime that runs it enforces it (docs/authoring.md, What
// each runtime isolates). GET /v1/connectors shows it for each version.
type Isolation struct {
	Runtime string `json:"runtime"` // the form that runs: RuntimeNative or RuntimeWASM
	// Mode is the operator's --native-sandbox for a native version:
	// auto, required or off.
	Mode       string   `json:"mode,omitempty"`
	Network    string   `json:"network"`    // one of the Network* values
	Filesystem string   `json:"filesystem"` // one of the Filesystem* values
	Notes      []string `json:"notes,omitempty"`
}

// What a connector's code can reach on the network.
const (
	// NetworkHostOnly: it has no network of its own; its requests and
	// connections go through the host's egress guard.
	NetworkHostOnly = "host-only"
	// NetworkTCPRefused: its own TCP connections are refused, and its
	// requests and TCP connections go through the host's egress guard;
	// other protocols (UDP) are open.
	NetworkTCPRefused = "tcp-refused"
	// NetworkOpen: it has the host's network; the egress guard holds only
	// code that goes through it.
	NetworkOpen = "open"
)

// What files a connector's code can open.
const (
	FilesystemNone = "none" // no filesystem at all (WASM)
	// FilesystemRestricted: its binary, the system's libraries,
	// certificates and time zones, and a private directory of its own.
	FilesystemRestricted = "restricted"
	// FilesystemOpen: whatever the server's OS user may open.
	FilesystemOpen = "open"
)

// Isolator is a ConnectorRuntime that says how it isolates a version.
type Isolator interface {
	Isolation(ref ConnectorRef) Isolation
}

// Isolation asks the runtime of the ref's form; a runtime that is no
// Isolator is reported as isolating nothing.
func (m RuntimeMux) Isolation(ref ConnectorRef) Isolation {
	form := ref.Runtime
	if form == "" {
		form = RuntimeNative
	}
	if i, ok := m[form].(Isolator); ok {
		return i.Isolation(ref)
	}
	return Isolation{Runtime: form, Network: NetworkOpen, Filesystem: FilesystemOpen}
}
