// Command conforming is a small connector that keeps every promise the
// conformance kit checks: the kit's own tests run it to show that a good
// connector passes.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/relayhq/relay/sdk/connector"
)

// Config is a connection to a message service.
type Config struct {
	BaseURL string `json:"base_url" jsonschema:"the service's root URL"`
	Token   string `json:"token" relay:"secret" jsonschema:"the API token"`
}

// SendInput is one message.
type SendInput struct {
	Channel string `json:"channel"`
	Text    string `json:"text"`
	Urgent  bool   `json:"urgent,omitempty"`
}

// SendOutput is the message the service stored.
type SendOutput struct {
	ID string `json:"id"`
}

func main() {
	connector.Serve(&connector.Connector{
		Name: "conforming", Version: "0.3.1", Title: "Conforming",
		Config: Config{},
		Egress: []string{"*"},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{
				Name: "send", Title: "Send a message", SideEffect: connector.Write,
			}, previewSend, executeSend),
		},
	})
}

func previewSend(_ context.Context, req connector.Request[SendInput]) (any, error) {
	var cfg Config
	if err := req.Connection.Decode(&cfg); err != nil {
		return nil, err
	}
	return map[string]any{"post": strings.TrimSuffix(cfg.BaseURL, "/") + "/messages", "channel": req.Input.Channel}, nil
}

func executeSend(ctx context.Context, req connector.Request[SendInput]) (SendOutput, error) {
	var cfg Config
	if err := req.Connection.Decode(&cfg); err != nil {
		return SendOutput{}, err
	}
	log.Printf("sending a message to %s", req.Input.Channel)
	body, _ := json.Marshal(req.Input)
	resp, err := req.Fetch(ctx, &connector.HTTPRequest{
		Method: "POST", URL: strings.TrimSuffix(cfg.BaseURL, "/") + "/messages", Body: body,
		Header:  connector.Header{"Authorization": {"Bearer " + cfg.Token}, "Content-Type": {"application/json"}},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		return SendOutput{}, fmt.Errorf("sending: %w", err) // classified by the SDK
	}
	switch {
	case resp.StatusCode == 404:
		return SendOutput{}, connector.NotFound("no channel %q", req.Input.Channel)
	case resp.StatusCode == 401:
		return SendOutput{}, connector.Unauthorized("the service refused the token")
	case resp.StatusCode >= 500:
		return SendOutput{}, connector.Retryable(0, "the service answered %d", resp.StatusCode)
	case resp.StatusCode >= 300:
		return SendOutput{}, connector.Permanent("the service answered %d", resp.StatusCode)
	}
	var out SendOutput
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return SendOutput{}, connector.Permanent("the service's answer: %v", err)
	}
	return out, nil
}
