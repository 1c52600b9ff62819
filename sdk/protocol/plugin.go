//go:build !wasip1

package protocol

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Handshake keeps a connector binary from being run by anything but a
// Relay host, and tells a person who runs it by hand what it is. It is not
// a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  Version,
	MagicCookieKey:   "RELAY_CONNECTOR_PLUGIN",
	MagicCookieValue: "e4a1f0c2-relay-connector-v1",
}

// VersionedPlugins maps each protocol version to the plugin set that serves
// it. On the host side impl is nil.
func VersionedPlugins(impl connectorv1.ConnectorServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}

// GRPCPlugin carries relay.connector.v1 over go-plugin's gRPC transport.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl serves the calls in the connector process; unused by the host.
	Impl connectorv1.ConnectorServer
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the connector with the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	connectorv1.RegisterConnectorServer(s, p.Impl)
	return nil
}

// GRPCClient returns the host's client for the connector.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return connectorv1.NewConnectorClient(c), nil
}

// ServerOptions are the gRPC server options a connector process uses.
func ServerOptions(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
	return grpc.NewServer(opts...)
}

// DialOptions are the gRPC dial options a host uses.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageSize),
		grpc.MaxCallSendMsgSize(MaxMessageSize),
	)}
}
