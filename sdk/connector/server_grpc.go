//go:build !wasip1

package connector

import (
	"context"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// GRPC returns s as the gRPC service a plugin process serves. A WASM
// module has no gRPC: its build leaves this, and gRPC, out.
func (s *Server) GRPC() connectorv1.ConnectorServer { return grpcServer{s: s} }

type grpcServer struct {
	connectorv1.UnimplementedConnectorServer
	s *Server
}

func (g grpcServer) Describe(ctx context.Context, req *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	return g.s.Describe(ctx, req)
}

func (g grpcServer) CheckConfig(ctx context.Context, req *connectorv1.CheckConfigRequest) (*connectorv1.CheckConfigResponse, error) {
	return g.s.CheckConfig(ctx, req)
}

func (g grpcServer) Preview(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.PreviewResponse, error) {
	return g.s.Preview(ctx, req)
}

func (g grpcServer) Execute(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.ExecuteResponse, error) {
	return g.s.Execute(ctx, req)
}
