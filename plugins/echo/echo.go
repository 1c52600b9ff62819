// Package echo is the echo connector: echo.echo returns its input. It is
// the diagnostic and benchmark connector, and the smallest example of the
// SDK.
package echo

import (
	"context"
	"encoding/json"

	"github.com/relayhq/relay/sdk/connector"
)

// Version is the connector's version.
const Version = "1.0.0"

var objectSchema = json.RawMessage(`{"type":"object","description":"any JSON object"}`)

// New returns the echo connector.
func New() *connector.Connector {
	return &connector.Connector{
		Name:        "echo",
		Version:     Version,
		Title:       "Echo",
		Description: "Returns its input unchanged. For checking a Relay installation and for benchmarks.",
		Publisher:   "Relay",
		License:     "Apache-2.0",
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{
				Name:         "echo",
				Title:        "Echo",
				Description:  "Returns the input object as the output.",
				SideEffect:   connector.None,
				Idempotent:   true,
				InputSchema:  objectSchema,
				OutputSchema: objectSchema,
			}, nil, func(_ context.Context, req connector.Request[json.RawMessage]) (json.RawMessage, error) {
				return req.Input, nil
			}),
		},
	}
}
