// Package webhook is the webhook connector: webhook.send POSTs a JSON body
// to a URL, signed as Standard Webhooks (https://www.standardwebhooks.com)
// prescribes, so that the receiver can check that it came from this
// connection and drop a retried duplicate. It uses nothing but the SDK:
// every connection goes through the connector's egress guard.
package webhook

import (
	"context"
	"encoding/json"
	"time"

	"github.com/relayhq/relay/sdk/connector"
)

// Version is the connector's version.
const Version = "1.0.0"

// Config is a webhook connection's config.
type Config struct {
	SigningSecret string `json:"signing_secret" relay:"secret" jsonschema:"the Standard Webhooks signing secret: whsec_ followed by the base64 of 24 to 64 random bytes"`
}

// SendInput is the input of webhook.send.
type SendInput struct {
	URL     string            `json:"url"`
	Body    json.RawMessage   `json:"body"`
	Headers map[string]string `json:"headers,omitempty"`
}

// SendOutput is the output of webhook.send: the receiver's 2xx answer.
type SendOutput struct {
	Status        int    `json:"status"`
	BodyExcerpt   string `json:"body_excerpt"`
	BodyTruncated bool   `json:"body_truncated"`
	WebhookID     string `json:"webhook_id"`
	DurationMS    int64  `json:"duration_ms"`
}

// Preview is what webhook.send's preview returns: the request that execute
// would send, with the signature redacted. Its webhook-timestamp is the
// preview's time, and its webhook-id is derived from the preview call's
// idempotency key or run id: execute derives its own the same way.
type Preview struct {
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	WebhookID string            `json:"webhook_id"`
}

const sendDescription = `POSTs body as JSON to url, signed per Standard Webhooks: headers webhook-id, ` +
	`webhook-timestamp (unix seconds) and webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body>). ` +
	`webhook-id is "msg_" followed by a hash of the workspace and the idempotency key (the run id when there ` +
	`is no key), so a retried delivery carries the same webhook-id and the receiver can drop the duplicate; ` +
	`the timestamp and signature are fresh on every attempt. Redirects are never followed. Only a 2xx answer ` +
	`succeeds; 408, 429 and 5xx are retryable (honouring Retry-After), any other status is permanent.`

var sendInputSchema = json.RawMessage(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["url", "body"],
  "properties": {
    "url": {
      "description": "The receiver's http or https URL.",
      "type": "string",
      "minLength": 1,
      "maxLength": 2048
    },
    "body": {
      "description": "Any JSON value; sent compacted as the request body (at most 1 MiB)."
    },
    "headers": {
      "description": "Extra request headers. Hop-by-hop headers, Host, Content-Length, Content-Type, Content-Encoding, Expect and webhook-* are refused.",
      "type": "object",
      "maxProperties": 50,
      "propertyNames": { "pattern": "^[!#$%&'*+.^_\u0060|~0-9A-Za-z-]+$", "maxLength": 256 },
      "additionalProperties": { "type": "string", "maxLength": 8192 }
    }
  }
}`)

var sendOutputSchema = json.RawMessage(`{
  "type": "object",
  "required": ["status", "body_excerpt", "body_truncated", "webhook_id", "duration_ms"],
  "properties": {
    "status": { "description": "The receiver's HTTP status (2xx).", "type": "integer" },
    "body_excerpt": { "description": "The first KiB of the response body, as valid UTF-8.", "type": "string" },
    "body_truncated": { "description": "Whether the response body was longer than the excerpt.", "type": "boolean" },
    "webhook_id": { "description": "The webhook-id header sent.", "type": "string" },
    "duration_ms": { "description": "From sending the request to reading the excerpt.", "type": "integer" }
  }
}`)

// New returns the webhook connector.
func New() *connector.Connector {
	return &connector.Connector{
		Name:        "webhook",
		Version:     Version,
		Title:       "Webhook",
		Description: "Sends signed JSON webhooks (Standard Webhooks) to any public http or https URL.",
		Publisher:   "Relay",
		License:     "Apache-2.0",
		Config:      Config{},
		// Any public host: the guard still refuses private, loopback,
		// link-local and metadata addresses unless the operator allows them.
		Egress:      []string{"*"},
		CheckConfig: checkConfig,
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{
				Name:         "send",
				Title:        "Send a webhook",
				Description:  sendDescription,
				SideEffect:   connector.Write,
				RetrySafe:    true,
				Idempotent:   false,
				Timeout:      15 * time.Second, // above requestTimeout, so the connector reports its own timeout
				InputSchema:  sendInputSchema,
				OutputSchema: sendOutputSchema,
			}, preview, send),
		},
	}
}

// checkConfig checks the signing secret's format. It reaches nothing: a
// webhook connection has no endpoint of its own to test.
func checkConfig(_ context.Context, conn connector.Connection) error {
	_, err := connectionSecret(conn)
	return err
}

func connectionSecret(conn connector.Connection) ([]byte, error) {
	var cfg Config
	if err := conn.Decode(&cfg); err != nil {
		return nil, err
	}
	key, err := ParseSigningSecret(cfg.SigningSecret)
	if err != nil {
		return nil, &connector.Error{
			Code: connector.CodeInvalidInput, Message: "connection config: " + err.Error(),
			Fields: []connector.FieldError{{Pointer: "/signing_secret", Message: err.Error()}},
		}
	}
	return key, nil
}
