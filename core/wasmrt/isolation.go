package wasmrt

import "github.com/relayhq/relay/core"

// Isolation is the same for every module: no filesystem, no socket, and
// HTTP only through the host's egress guard (relay.http_request).
func (r *Runtime) Isolation(core.ConnectorRef) core.Isolation {
	return core.Isolation{Runtime: core.RuntimeWASM, Network: core.NetworkHostOnly, Filesystem: core.FilesystemNone}
}
