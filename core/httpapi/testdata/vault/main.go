// Command vault is a test connector for the actions API: a destructive
// action that needs confirmation and leaves a mark per execution, a failing
// action, a slow one, one that says which keys its call carries, and a
// secret in its config.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/relayhq/relay/sdk/connector"
)

type config struct {
	Region string `json:"region,omitempty"`
	Token  string `json:"token" relay:"secret"`
}

type item struct {
	ID string `json:"id"`
}

// keysInput may carry a secret, to see that a run made again gets it
// whole, and a time before which the call fails.
type keysInput struct {
	Password  string    `json:"password,omitempty"`
	FailUntil time.Time `json:"fail_until,omitzero"`
}

type slow struct {
	MS int `json:"ms"`
}

// deletions is where each executed delete leaves a line, in the process's
// working dir (its own directory in the sandbox), so the test can count
// side effects.
const deletions = "deletions.log"

// version is set at link time to make other versions for tests.
var version = "1.0.0"

func main() {
	connector.Serve(&connector.Connector{
		Name: "vault", Version: version, Title: "Vault", Config: config{},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "delete_item", Title: "Delete an item", SideEffect: connector.Destructive},
				func(_ context.Context, req connector.Request[item]) (any, error) {
					return map[string]string{"would_delete": req.Input.ID}, nil
				},
				func(_ context.Context, req connector.Request[item]) (map[string]any, error) {
					var cfg config
					if err := req.Connection.Decode(&cfg); err != nil {
						return nil, err
					}
					if cfg.Token == "" {
						return nil, connector.Unauthorized("no token")
					}
					f, err := os.OpenFile(deletions, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
					if err != nil {
						return nil, err
					}
					defer f.Close()
					fmt.Fprintf(f, "%s %s\n", req.IdempotencyKey, req.Input.ID)
					return map[string]any{"deleted": req.Input.ID, "key_chars": len(cfg.Token)}, nil
				}),
			connector.NewAction(connector.ActionSpec{Name: "fail", Title: "Always fails", SideEffect: connector.Write},
				nil,
				func(context.Context, connector.Request[map[string]any]) (map[string]any, error) {
					return nil, connector.Permanent("the vault refused")
				}),
			connector.NewAction(connector.ActionSpec{Name: "keys", Title: "Says which keys the call carries", SideEffect: connector.None},
				func(_ context.Context, req connector.Request[keysInput]) (any, error) {
					return map[string]string{"idempotency_key": req.IdempotencyKey}, nil
				},
				func(_ context.Context, req connector.Request[keysInput]) (map[string]any, error) {
					if time.Now().Before(req.Input.FailUntil) {
						return nil, connector.Permanent("asked to fail until %s", req.Input.FailUntil.Format(time.RFC3339Nano))
					}
					return map[string]any{"idempotency_key": req.IdempotencyKey, "run_id": req.RunID,
						"given_chars": len(req.Input.Password)}, nil
				}),
			connector.NewAction(connector.ActionSpec{Name: "slow", Title: "Sleeps", SideEffect: connector.None},
				nil,
				func(ctx context.Context, req connector.Request[slow]) (map[string]any, error) {
					select {
					case <-time.After(time.Duration(req.Input.MS) * time.Millisecond):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
					return map[string]any{"slept_ms": req.Input.MS}, nil
				}),
		},
	})
}
