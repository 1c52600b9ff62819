package wasmhost

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Client returns the pool as a connectorv1.ConnectorClient, the interface
// a host uses for a native connector, so that code written for native
// connectors (the conformance kit) runs a module unchanged. Each call takes
// an instance from the pool and puts it back. Errors are gRPC statuses, as
// a native connector's would be: KindTimeout is DeadlineExceeded,
// KindCanceled Canceled, KindTooLarge ResourceExhausted, KindCrashed
// Unavailable (the connection to a crashed plugin is gone too); the
// message is the *Error's. Call options are ignored.
func (p *Pool) Client() connectorv1.ConnectorClient { return poolClient{p} }

type poolClient struct{ p *Pool }

func (c poolClient) Describe(ctx context.Context, in *connectorv1.DescribeRequest, _ ...grpc.CallOption) (*connectorv1.DescribeResponse, error) {
	return with(ctx, c.p, in, (*Instance).Describe)
}

func (c poolClient) CheckConfig(ctx context.Context, in *connectorv1.CheckConfigRequest, _ ...grpc.CallOption) (*connectorv1.CheckConfigResponse, error) {
	return with(ctx, c.p, in, (*Instance).CheckConfig)
}

func (c poolClient) Preview(ctx context.Context, in *connectorv1.ActionRequest, _ ...grpc.CallOption) (*connectorv1.PreviewResponse, error) {
	return with(ctx, c.p, in, (*Instance).Preview)
}

func (c poolClient) Execute(ctx context.Context, in *connectorv1.ActionRequest, _ ...grpc.CallOption) (*connectorv1.ExecuteResponse, error) {
	return with(ctx, c.p, in, (*Instance).Execute)
}

// OpenHost is refused: a module has no network to be lent, its host makes
// its requests (relay.http_request).
func (poolClient) OpenHost(context.Context, *connectorv1.OpenHostRequest, ...grpc.CallOption) (*connectorv1.OpenHostResponse, error) {
	return nil, status.Error(codes.Unimplemented, "a WASM module makes its requests through relay.http_request")
}

func with[Req, Resp any](ctx context.Context, p *Pool, in Req, fn func(*Instance, context.Context, Req) (Resp, error)) (Resp, error) {
	var zero Resp
	i, err := p.Get(ctx)
	if err != nil {
		return zero, grpcError(err)
	}
	resp, err := fn(i, ctx, in)
	p.Put(i)
	if err != nil {
		return zero, grpcError(err)
	}
	return resp, nil
}

func grpcError(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return status.Error(codes.Unavailable, err.Error())
	}
	code := codes.Unavailable
	switch e.Kind {
	case KindTimeout:
		code = codes.DeadlineExceeded
	case KindCanceled:
		code = codes.Canceled
	case KindTooLarge:
		code = codes.ResourceExhausted
	}
	return status.Error(code, e.Error())
}
