// Package protocol is the contract between the Relay host and a native
// connector: the go-plugin handshake, the protocol versions the SDK speaks,
// the gRPC plugin that carries relay.connector.v1 (connector.proto, with its
// generated code in connectorv1), and the limits both sides enforce.
package protocol

//go:generate protoc --go_out=connectorv1 --go_opt=paths=source_relative --go-grpc_out=connectorv1 --go-grpc_opt=paths=source_relative connector.proto
// The gRPC service code is left out of WASM builds (GOOS=wasip1), which
// carry the messages only: a module is smaller and compiles faster.
//go:generate sh -c "printf '//go:build !wasip1\n\n' | cat - connectorv1/connector_grpc.pb.go > connectorv1/connector_grpc.pb.go.tmp && mv connectorv1/connector_grpc.pb.go.tmp connectorv1/connector_grpc.pb.go"

// Version is the newest protocol version this SDK speaks. A host and a
// connector agree on the highest version both list (go-plugin's
// VersionedPlugins); version 1 is relay.connector.v1.
const Version = 1

// PluginName is the name the connector is dispensed under.
const PluginName = "connector"

// MaxMessageSize caps every message in either direction, so that a large
// input or a runaway output fails cleanly with the limit named instead of
// exhausting memory.
const MaxMessageSize = 4 << 20

// EnvEgressAllow is the environment variable through which the host passes
// the operator's --egress-allow CIDRs (comma-separated) to a connector.
const EnvEgressAllow = "RELAY_EGRESS_ALLOW"
