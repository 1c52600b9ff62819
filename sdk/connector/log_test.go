package connector_test

import (
	"context"
	"testing"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// A handler's context carries the connector's logger, named after it;
// outside a call the logger drops everything.
func TestLoggerFromContext(t *testing.T) {
	var name string
	s := newServer(t, func(ctx context.Context, _ connector.Request[sendInput]) (sendOutput, error) {
		name = connector.LoggerFromContext(ctx).Name()
		return sendOutput{MessageID: "m1", Accepted: 1}, nil
	})
	resp, err := s.Execute(context.Background(), &connectorv1.ActionRequest{
		Action: "send", InputJson: []byte(`{"to":["a@example.com"],"subject":"s"}`),
	})
	if err != nil || resp.GetError() != nil {
		t.Fatalf("execute: %v %v", err, resp.GetError())
	}
	if name != "mail" {
		t.Errorf("the handler's logger is named %q, want the connector's name", name)
	}
	if l := connector.LoggerFromContext(context.Background()); l.IsError() {
		t.Errorf("the logger outside a call logs errors; want one that drops everything")
	}
}
