package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
)

// Server answers the connector protocol for one Connector, whatever carries
// the messages. Make it with NewServer. Natively its Describe, CheckConfig,
// Preview and Execute take and return the protocol's messages (GRPC serves
// them); a WASM module decodes and encodes the same messages itself
// (wire.go) and calls the methods below them.
type Server struct {
	c            *Connector
	manifest     *manifest.Manifest
	manifestJSON []byte
	actions      map[string]*boundAction
	egress       *egress.Guard
	logger       hclog.Logger
}

type boundAction struct {
	def *actionDef
	// validate checks an input against the action's input schema; nil
	// built for wasip1, where the host validates (schemacheck.go).
	validate func(input []byte) error
}

// NewServer checks the connector's declaration and builds its manifest. The
// operator's egress exceptions come from the RELAY_EGRESS_ALLOW variable the
// host sets; built for wasip1, where the host checks every address itself,
// the guard in the module checks host names only.
func NewServer(c *Connector, runtime string) (*Server, error) {
	allow, err := operatorAllow()
	if err != nil {
		return nil, err
	}
	s := &Server{c: c, actions: map[string]*boundAction{}, egress: egress.New(c.Egress, allow), logger: newLogger(c.Name)}
	m := &manifest.Manifest{
		Name: c.Name, Version: c.Version, Runtime: runtime, Protocol: protocol.Version,
		Title: c.Title, Description: c.Description, Publisher: c.Publisher, License: c.License,
		Egress: c.Egress, MinRelayVersion: c.MinRelayVersion, ConfigSchema: c.ConfigSchema,
	}
	if len(m.ConfigSchema) == 0 && c.Config != nil {
		if m.ConfigSchema, err = deriveSchema(reflect.TypeOf(c.Config), true); err != nil {
			return nil, fmt.Errorf("connector %s: config: %w", c.Name, err)
		}
	}
	for _, a := range c.Actions {
		d := a.def()
		if d.inputErr != nil || d.outputErr != nil {
			return nil, fmt.Errorf("connector %s: action %s: %w", c.Name, d.spec.Name, errors.Join(d.inputErr, d.outputErr))
		}
		timeout, err := timeoutSeconds(d.spec.Timeout)
		if err != nil {
			return nil, fmt.Errorf("connector %s: action %s: %w", c.Name, d.spec.Name, err)
		}
		m.Actions = append(m.Actions, manifest.Action{
			Name: d.spec.Name, Title: d.spec.Title, Description: d.spec.Description,
			InputSchema: d.inputSchema, OutputSchema: d.outputSchema,
			SideEffect: string(d.spec.SideEffect), RequiresConfirmation: d.spec.RequiresConfirmation,
			Idempotent: d.spec.Idempotent, RetrySafe: d.spec.RetrySafe, TimeoutSeconds: timeout,
		})
		validate, err := inputValidator(d.inputSchema)
		if err != nil {
			return nil, fmt.Errorf("connector %s: action %s: input schema: %w", c.Name, d.spec.Name, err)
		}
		s.actions[d.spec.Name] = &boundAction{def: d, validate: validate}
	}
	if err := checkManifest(m); err != nil {
		return nil, fmt.Errorf("connector %s: %w", c.Name, err)
	}
	if s.manifestJSON, err = json.MarshalIndent(m, "", "  "); err != nil {
		return nil, err
	}
	s.manifest = m
	return s, nil
}

// Manifest returns the connector's manifest as JSON.
func (s *Server) Manifest() []byte { return s.manifestJSON }

// actionRequest is an ActionRequest of the protocol, however it arrived.
type actionRequest struct {
	action         string
	input          []byte
	conn           Connection
	runID          string
	idempotencyKey string
	workspaceID    string
	inputValidated bool
	traceParent    string
}

// checkConfig runs the connector's CheckConfig, if it has one.
func (s *Server) checkConfig(ctx context.Context, conn Connection) *Error {
	if s.c.CheckConfig == nil {
		return nil
	}
	return classify(s.c.CheckConfig(s.callContext(ctx), conn))
}

// run validates the input, calls the handler and encodes its result; ctx
// is a call context (callContext). Classified failures travel in the
// response; the gRPC error is reserved for the transport. The schema
// check is skipped when the host says it has done it (input_validated): a
// second parse and check of the input is a sizeable part of a small call.
// The handler's typed decode still refuses what does not fit.
func (s *Server) run(ctx context.Context, req *actionRequest, preview bool) ([]byte, *Error) {
	a, ok := s.actions[req.action]
	if !ok {
		return nil, &Error{Code: CodeUnknownAction, Message: fmt.Sprintf("connector %s has no action %q", s.c.Name, req.action)}
	}
	input := req.input
	if len(input) == 0 {
		input = []byte("{}")
	}
	if !req.inputValidated && a.validate != nil {
		if err := a.validate(input); err != nil {
			return nil, classify(err)
		}
	}
	c := &call{
		input: input, conn: req.conn, runID: req.runID,
		idempotencyKey: req.idempotencyKey, workspaceID: req.workspaceID, egress: s.egress,
		traceParent: req.traceParent,
	}
	if req.traceParent != "" {
		ctx = context.WithValue(ctx, traceParentKey{}, req.traceParent)
	}
	handler := a.def.execute
	if preview {
		handler = a.def.preview
	}
	result, err := handler(ctx, c)
	if err != nil {
		return nil, classify(err)
	}
	var out []byte
	if r, ok := result.(json.RawMessage); ok && json.Valid(r) {
		out = r
	} else if out, err = json.Marshal(result); err != nil {
		return nil, classify(fmt.Errorf("encoding the result: %w", err))
	}
	// Leave room for the envelope: the transport refuses anything over the cap.
	if limit := protocol.MaxMessageSize - 64<<10; len(out) > limit {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the result is %d bytes, over the %d-byte message limit", len(out), limit)}
	}
	return out, nil
}

// maxTimeout is the longest ActionSpec.Timeout a manifest can declare.
const maxTimeout = 15 * time.Minute

// timeoutSeconds turns ActionSpec.Timeout into the manifest's
// timeout_seconds, rounded up to a whole second so that a call never gets
// less time than the author asked for. 0 means the host's default. A
// timeout under a second would otherwise round to a default the author did
// not mean, and one over maxTimeout is more than a host grants.
func timeoutSeconds(d time.Duration) (int, error) {
	switch {
	case d == 0:
		return 0, nil
	case d < 0:
		return 0, fmt.Errorf("timeout %v is negative; leave it 0 for the host's default", d)
	case d < time.Second:
		return 0, fmt.Errorf("timeout %v is under a second, the manifest's unit; use at least 1s, or 0 for the host's default", d)
	case d > maxTimeout:
		return 0, fmt.Errorf("timeout %v is over 15 minutes, the most a host allows one call", d)
	}
	return int((d + time.Second - 1) / time.Second), nil
}

type traceParentKey struct{}

// TraceParentFromContext returns the W3C traceparent of the host's span
// for the call ctx belongs to, or "" when the host does not trace.
func TraceParentFromContext(ctx context.Context) string {
	tp, _ := ctx.Value(traceParentKey{}).(string)
	return tp
}

type egressKey struct{}

func withEgress(ctx context.Context, g *egress.Guard) context.Context {
	return context.WithValue(ctx, egressKey{}, g)
}

// EgressFromContext returns the connector's egress policy, for code (such as
// CheckConfig) that has a context but no Request.
func EgressFromContext(ctx context.Context) *egress.Guard {
	g, _ := ctx.Value(egressKey{}).(*egress.Guard)
	if g == nil {
		return egress.New(nil, nil) // refuses everything
	}
	return g
}
