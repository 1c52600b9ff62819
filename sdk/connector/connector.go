// Package connector is how an author writes a Relay connector: declare the
// connector and its actions with Go types, write Preview and Execute
// handlers, and call Serve from main. The same code is served to the host as
// a native plugin process (go-plugin over gRPC) or, built with GOOS=wasip1
// GOARCH=wasm -buildmode=c-shared, as a WASM module that speaks the Relay
// WASM ABI (docs/wasm-abi.md) with the same main. Make HTTP requests with
// Request.Fetch and log with LoggerFromContext: both work in either form.
package connector

import (
	"context"
	"encoding/json"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

// SideEffect says what an action changes.
type SideEffect string

const (
	// None: the action only reads.
	None SideEffect = "none"
	// Write: the action changes something.
	Write SideEffect = "write"
	// Destructive: the action deletes or cannot be undone; executing it
	// needs a confirm token from preview unless the action says otherwise.
	Destructive SideEffect = "destructive"
)

// Connector declares a connector version.
type Connector struct {
	Name            string // ^[a-z][a-z0-9-]{1,62}$
	Version         string // semver, e.g. 1.2.0
	Title           string
	Description     string
	Publisher       string
	License         string // SPDX
	MinRelayVersion string

	// Config is a value of the connection's config type (a struct): its
	// JSON Schema becomes the manifest's config_schema, and fields tagged
	// `relay:"secret"` are marked secret. Alternatively set ConfigSchema.
	Config       any
	ConfigSchema json.RawMessage

	// Egress lists the hosts the connector may reach: "api.example.com",
	// "*.example.com", or "*" for any public host.
	Egress []string

	Actions []Action

	// CheckConfig, if set, checks a connection (for example by signing in)
	// without changing anything.
	CheckConfig func(ctx context.Context, conn Connection) error
}

// Connection is the connector's configuration in one workspace.
type Connection struct {
	// Config holds the non-secret fields as a JSON object.
	Config json.RawMessage
	// Secrets holds the secret fields, decrypted for this call only.
	Secrets map[string]string
}

// Decode merges the config and the secrets into one JSON object and decodes
// it into v, normally the struct given as Connector.Config.
func (c Connection) Decode(v any) error {
	fields := map[string]any{}
	if len(c.Config) > 0 && string(c.Config) != "null" {
		if err := json.Unmarshal(c.Config, &fields); err != nil {
			return InvalidInput("connection config: %v", err)
		}
	}
	for k, s := range c.Secrets {
		fields[k] = s
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return InvalidInput("connection config: %v", err)
	}
	return nil
}

// Request is one call of an action.
type Request[In any] struct {
	Input      In
	Connection Connection
	// RunID identifies the run. IdempotencyKey is derived by Relay from
	// the workspace and the caller's Idempotency-Key (or, without one,
	// from the run): the same on every attempt and retry of one request,
	// and never the same for two workspaces. Pass it on to services that
	// accept one. It is empty in a preview made without a key.
	RunID          string
	IdempotencyKey string
	WorkspaceID    string
	// Egress is the connector's egress policy. Make every outbound
	// connection through it: Request.Fetch does, and so does
	// nethttp.Client(Egress, timeout).
	Egress *egress.Guard
	// TraceParent is the W3C traceparent of the host's span for this call
	// when the host traces, else "". Fetch sends it on each request (as
	// the traceparent header, unless the request sets one), so the
	// service's own traces join the caller's; pass it on to clients of
	// your own.
	TraceParent string
}

// ActionSpec declares an action.
type ActionSpec struct {
	Name        string // ^[a-z][a-z0-9_]{0,62}$; the action id is <connector>.<name>
	Title       string
	Description string
	SideEffect  SideEffect
	// RequiresConfirmation overrides the default (true only for
	// Destructive actions).
	RequiresConfirmation *bool
	// Idempotent says that running it twice with the same input has the
	// effect of running it once.
	Idempotent bool
	// RetrySafe says that running it again with the same
	// Request.IdempotencyKey has the effect of running it once, because
	// the action hands the key to the service and the service drops a
	// repeat (an Idempotency-Key header, a webhook-id a receiver
	// remembers). Relay then makes a call that a stopped server cut short
	// again, with the same key, instead of leaving the run interrupted.
	RetrySafe bool
	// Timeout overrides the host's default deadline (30 s) for one call.
	// The manifest counts whole seconds, so it is rounded up (1.5s becomes
	// 2s); NewServer refuses a Timeout under 1s or over 15 minutes. 0 keeps
	// the host's default.
	Timeout time.Duration
	// InputSchema and OutputSchema, when set, replace the schemas derived
	// from the handler's Go types.
	InputSchema, OutputSchema json.RawMessage
}

// PreviewFunc says what an action would do, without doing it.
type PreviewFunc[In any] func(ctx context.Context, req Request[In]) (any, error)

// ExecuteFunc performs an action.
type ExecuteFunc[In, Out any] func(ctx context.Context, req Request[In]) (Out, error)

// Action is a declared action with its handlers; make one with NewAction.
type Action interface {
	def() *actionDef
}

// NewAction declares an action whose input decodes into In and whose output
// is Out. The JSON Schemas are derived from In and Out unless the spec gives
// them. preview may be nil: the default preview shows the validated input.
func NewAction[In, Out any](spec ActionSpec, preview PreviewFunc[In], execute ExecuteFunc[In, Out]) Action {
	d := &actionDef{spec: spec}
	d.inputSchema, d.inputErr = schemaOr[In](spec.InputSchema, true)
	d.outputSchema, d.outputErr = schemaOr[Out](spec.OutputSchema, false)
	decode := func(c *call) (Request[In], error) {
		var in In
		if err := decodeInput(c.input, &in); err != nil {
			return Request[In]{}, err
		}
		return Request[In]{
			Input: in, Connection: c.conn, RunID: c.runID, IdempotencyKey: c.idempotencyKey,
			WorkspaceID: c.workspaceID, Egress: c.egress, TraceParent: c.traceParent,
		}, nil
	}
	d.preview = func(ctx context.Context, c *call) (any, error) {
		req, err := decode(c)
		if err != nil {
			return nil, err
		}
		if preview == nil {
			return map[string]any{"action": spec.Name, "input": req.Input}, nil
		}
		return preview(ctx, req)
	}
	d.execute = func(ctx context.Context, c *call) (any, error) {
		req, err := decode(c)
		if err != nil {
			return nil, err
		}
		return execute(ctx, req)
	}
	return d
}

// call is the transport-independent form of one action call.
type call struct {
	input          json.RawMessage
	conn           Connection
	runID          string
	idempotencyKey string
	workspaceID    string
	egress         *egress.Guard
	traceParent    string
}

type actionDef struct {
	spec                ActionSpec
	inputSchema         json.RawMessage
	outputSchema        json.RawMessage
	inputErr, outputErr error
	preview, execute    func(ctx context.Context, c *call) (any, error)
}

func (d *actionDef) def() *actionDef { return d }
