package core

import (
	"context"
	"encoding/json"
)

// ConnectorRef names one version of a connector.
type ConnectorRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (r ConnectorRef) String() string { return r.Name + "@" + r.Version }

// ConnectionData is what a call carries of a workspace's connection: the
// config and, for the length of the call, the decrypted secrets.
type ConnectionData struct {
	Config  json.RawMessage
	Secrets map[string]string
}

// ActionCall is one call of a connector's action.
type ActionCall struct {
	Action         string // the name within the connector, e.g. "send"
	Input          json.RawMessage
	Connection     ConnectionData
	RunID          string
	IdempotencyKey string
	WorkspaceID    string
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
