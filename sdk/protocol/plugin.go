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

// BrokerUser is a ConnectorServer that dials services the host offers
// over go-plugin's broker (Connector.OpenHost); GRPCServer hands it the
// plugin's broker before the first call.
type BrokerUser interface {
	UseBroker(*plugin.GRPCBroker)
}

// GRPCServer registers the connector with the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if u, ok := p.Impl.(BrokerUser); ok {
		u.UseBroker(b)
	}
	connectorv1.RegisterConnectorServer(s, p.Impl)
	return nil
}

// GRPCClient returns the host's client for the connector: a Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{ConnectorClient: connectorv1.NewConnectorClient(c), Broker: b}, nil
}

// Client is the host's side of a connector: its calls, and the broker
// through which the host serves the connector (Connector.OpenHost).
type Client struct {
	connectorv1.ConnectorClient
	Broker *plugin.GRPCBroker
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
