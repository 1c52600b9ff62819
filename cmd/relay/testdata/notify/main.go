// Command notify is a test connector for the crash tests: webhook.send's
// delivery (a signed Standard Webhooks POST whose webhook-id comes from
// the idempotency key) in an action that is not retry-safe, so that a
// call a crash cut short must end interrupted rather than run again.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/relayhq/relay/plugins/webhook"
	"github.com/relayhq/relay/sdk/connector"
)

type config struct {
	SigningSecret string `json:"signing_secret" relay:"secret"`
}

type postInput struct {
	URL  string          `json:"url"`
	Body json.RawMessage `json:"body"`
}

type postOutput struct {
	WebhookID string `json:"webhook_id"`
}

func main() {
	connector.Serve(&connector.Connector{
		Name: "notify", Version: "1.0.0", Title: "Notify", Config: config{}, Egress: []string{"*"},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "post", Title: "Post a signed webhook", SideEffect: connector.Write},
				nil, post),
		},
	})
}

func post(ctx context.Context, req connector.Request[postInput]) (postOutput, error) {
	var cfg config
	if err := req.Connection.Decode(&cfg); err != nil {
		return postOutput{}, err
	}
	key, err := webhook.ParseSigningSecret(cfg.SigningSecret)
	if err != nil {
		return postOutput{}, connector.InvalidInput("signing_secret: %v", err)
	}
	sum := sha256.Sum256([]byte(req.IdempotencyKey))
	id := "msg_" + hex.EncodeToString(sum[:16])
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, req.Input.Body)
	h := connector.Header{}
	h.Set("Content-Type", "application/json")
	h["webhook-id"] = []string{id}
	h["webhook-timestamp"] = []string{ts}
	h["webhook-signature"] = []string{"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))}
	resp, err := req.Fetch(ctx, &connector.HTTPRequest{Method: "POST", URL: req.Input.URL, Header: h, Body: req.Input.Body})
	if err != nil {
		return postOutput{}, err
	}
	if resp.StatusCode/100 != 2 {
		return postOutput{}, connector.Retryable(0, "the receiver answered %d", resp.StatusCode)
	}
	return postOutput{WebhookID: id}, nil
}
