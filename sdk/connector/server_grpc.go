//go:build !wasip1

package connector

import (
	"context"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// GRPC returns s as the gRPC service a plugin process serves. A WASM
// module has no gRPC: its build leaves this, and gRPC, out.
func (s *Server) GRPC() connectorv1.ConnectorServer { return &grpcServer{s: s} }

type grpcServer struct {
	connectorv1.UnimplementedConnectorServer
	s      *Server
	broker atomic.Pointer[plugin.GRPCBroker]
}

// UseBroker keeps the plugin's broker, through which OpenHost reaches the
// host's network (protocol.BrokerUser).
func (g *grpcServer) UseBroker(b *plugin.GRPCBroker) { g.broker.Store(b) }

func (g *grpcServer) Describe(ctx context.Context, req *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	return g.s.Describe(ctx, req)
}

func (g *grpcServer) CheckConfig(ctx context.Context, req *connectorv1.CheckConfigRequest) (*connectorv1.CheckConfigResponse, error) {
	return g.s.CheckConfig(ctx, req)
}

func (g *grpcServer) Preview(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.PreviewResponse, error) {
	return g.s.Preview(ctx, req)
}

func (g *grpcServer) Execute(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.ExecuteResponse, error) {
	return g.s.Execute(ctx, req)
}

// OpenHost dials the host's network service and makes it the process's
// network: from then on Fetch, and every egress guard's DialContext, go
// through the host (host_native.go).
func (g *grpcServer) OpenHost(_ context.Context, req *connectorv1.OpenHostRequest) (*connectorv1.OpenHostResponse, error) {
	b := g.broker.Load()
	if b == nil {
		return nil, status.Error(codes.FailedPrecondition, "this connector was served without go-plugin's broker, so it cannot reach the host's network")
	}
	conn, err := b.Dial(req.GetBrokerId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dialling the host's network service: %v", err)
	}
	useHost(connectorv1.NewHostClient(conn))
	return &connectorv1.OpenHostResponse{}, nil
}
