//go:build !wasip1

package connector

import (
	"context"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Describe returns the manifest.
func (s *Server) Describe(context.Context, *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	return &connectorv1.DescribeResponse{ManifestJson: s.manifestJSON}, nil
}

// CheckConfig runs the connector's CheckConfig, if it has one.
func (s *Server) CheckConfig(ctx context.Context, req *connectorv1.CheckConfigRequest) (*connectorv1.CheckConfigResponse, error) {
	return &connectorv1.CheckConfigResponse{Error: s.checkConfig(ctx, connectionFrom(req.GetConnection())).proto()}, nil
}

// Preview runs an action's preview handler.
func (s *Server) Preview(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.PreviewResponse, error) {
	out, err := s.run(s.callContext(ctx), actionRequestFrom(req), true)
	return &connectorv1.PreviewResponse{PreviewJson: out, Error: err.proto()}, nil
}

// Execute runs an action's execute handler.
func (s *Server) Execute(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.ExecuteResponse, error) {
	out, err := s.run(s.callContext(ctx), actionRequestFrom(req), false)
	return &connectorv1.ExecuteResponse{OutputJson: out, Error: err.proto()}, nil
}

func actionRequestFrom(req *connectorv1.ActionRequest) *actionRequest {
	return &actionRequest{
		action: req.GetAction(), input: req.GetInputJson(), conn: connectionFrom(req.GetConnection()),
		runID: req.GetRunId(), idempotencyKey: req.GetIdempotencyKey(), workspaceID: req.GetWorkspaceId(),
		inputValidated: req.GetInputValidated(), traceParent: req.GetTraceparent(),
	}
}

func connectionFrom(c *connectorv1.Connection) Connection {
	return Connection{Config: c.GetConfigJson(), Secrets: c.GetSecrets()}
}

// proto is e as the protocol's Error; nil for nil.
func (e *Error) proto() *connectorv1.Error {
	if e == nil {
		return nil
	}
	pe := &connectorv1.Error{
		Code:         connectorv1.ErrorCode(e.Code),
		Message:      e.Message,
		RetryAfterMs: e.RetryAfter.Milliseconds(),
	}
	for _, f := range e.Fields {
		pe.Fields = append(pe.Fields, &connectorv1.FieldError{Pointer: f.Pointer, Message: f.Message})
	}
	return pe
}
