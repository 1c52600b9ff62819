// Command conforming is a small connector that keeps every promise the
// conformance kit checks: the kit's own tests run it to show that a good
// connector passes.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
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
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cfg.BaseURL, "/")+"/messages", bytes.NewReader(body))
	if err != nil {
		return SendOutput{}, connector.InvalidInput("base_url: %v", err)
	}
	hreq.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := req.HTTPClient(10 * time.Second).Do(hreq)
	if err != nil {
		var denied *egress.DeniedError
		if errors.As(err, &denied) || ctx.Err() != nil {
			return SendOutput{}, fmt.Errorf("sending: %w", err) // classified by the SDK
		}
		return SendOutput{}, connector.Retryable(0, "sending: %v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return SendOutput{}, connector.NotFound("no channel %q", req.Input.Channel)
	case resp.StatusCode == http.StatusUnauthorized:
		return SendOutput{}, connector.Unauthorized("the service refused the token")
	case resp.StatusCode >= 500:
		return SendOutput{}, connector.Retryable(0, "the service answered %s", resp.Status)
	case resp.StatusCode >= 300:
		return SendOutput{}, connector.Permanent("the service answered %s", resp.Status)
	}
	var out SendOutput
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return SendOutput{}, connector.Permanent("the service's answer: %v", err)
	}
	return out, nil
}
