package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

const (
	// defaultCallTimeout bounds a call to an action that declares no
	// timeout_seconds.
	defaultCallTimeout = 30 * time.Second
	// shortDeadline is the deadline of the quick deadline check, and
	// promptBound how soon after its deadline a call must have returned.
	shortDeadline = time.Millisecond
	promptBound   = 5 * time.Second
	// hangDeadline is the deadline of the calls of the Hang fixture. By
	// letGoBound after it the handler must have closed its connections to
	// the hanging peer, and it must open none more than lateSlack after it.
	// The kit watches the peer until settle after both the deadline and the
	// answer, to see late connections too. The slack is for a loaded
	// machine: a handler that ignores its context holds on for far longer.
	hangDeadline = 500 * time.Millisecond
	letGoBound   = 3 * time.Second
	lateSlack    = 500 * time.Millisecond
	settle       = time.Second
	// unknownAction is an action name no connector is expected to declare.
	unknownAction = "conformance_kit_no_such_action"
)

// run starts the connector and runs every check, each as a subtest, so
// that one broken promise does not hide the others.
func run(t tb, cfg Config) {
	t.Helper()
	p := startConnector(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), defaultCallTimeout)
	resp, err := p.rpc.Describe(ctx, &connectorv1.DescribeRequest{})
	cancel()
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	m, err := manifest.Parse(resp.GetManifestJson())
	if err != nil {
		t.Fatalf("Describe returned a manifest that does not parse: %v", err)
	}
	k := &kit{p: p, m: m, fixtures: cfg.Fixtures, sideEffects: cfg.SideEffects, hang: cfg.Hang}
	if k.sideEffects == nil {
		k.sideEffects = func() int { return 0 }
	}
	t.Run("spec", func(t tb) { k.checkSpec(t, resp.GetManifestJson()) })
	t.Run("version", k.checkVersion)
	t.Run("schemas", k.checkSchemas)
	t.Run("fixtures", k.checkFixtures)
	t.Run("unknown_action", k.checkUnknownAction)
	t.Run("invalid_input", k.checkInvalidInput)
	t.Run("deadline", k.checkDeadline)
}

type kit struct {
	p           *process
	m           *manifest.Manifest
	fixtures    []Fixture
	sideEffects func() int
	hang        func(HangingPeer) Fixture
}

func (k *kit) checkSpec(t tb, described []byte) {
	runtime, args := manifest.RuntimeNative, []string{"spec"}
	if k.p.wasm != "" {
		runtime, args = manifest.RuntimeWASM, []string{"spec", manifest.RuntimeWASM}
	}
	if k.m.Runtime != runtime {
		t.Errorf("the manifest says runtime %q, but the connector runs as %s (%q)", k.m.Runtime, formName(runtime), runtime)
	}
	if k.p.wasm == "" {
		// The handshake settles on the newest version both sides speak;
		// the manifest names the newest the connector speaks.
		if want := min(k.m.Protocol, protocol.Version); k.p.version != want {
			t.Errorf("the manifest says protocol %d and the kit speaks up to %d, but the handshake settled on protocol %d", k.m.Protocol, protocol.Version, k.p.version)
		}
	} else if k.m.Protocol != protocol.Version {
		t.Errorf("the manifest says protocol %d, but a WASM module exchanges the messages of protocol %d (docs/wasm-abi.md)", k.m.Protocol, protocol.Version)
	}
	if k.p.path == "" {
		t.Logf("the kit was given the module only (Config.Binary): no native build to compare its manifest with `spec wasm`")
		return
	}
	out, err := k.p.command(args...)
	if err != nil {
		t.Errorf("`%s` failed: %v", strings.Join(args, " "), err)
		return
	}
	if _, err := manifest.Parse(out); err != nil {
		t.Errorf("`%s` printed a manifest that does not parse: %v", strings.Join(args, " "), err)
	}
	if !sameJSON(out, described) {
		t.Errorf("`%s` and Describe disagree; they must print the same manifest (a version that ships both forms installs `spec wasm`)\n%-10s%s\nDescribe: %s",
			strings.Join(args, " "), "spec:", compact(out), compact(described))
	}
}

func formName(runtime string) string {
	if runtime == manifest.RuntimeWASM {
		return "a WASM module"
	}
	return "a native plugin"
}

func (k *kit) checkVersion(t tb) {
	if k.p.path == "" {
		t.Logf("the kit was given the module only (Config.Binary): no native build to run `version`")
		return
	}
	out, err := k.p.command("version")
	if err != nil {
		t.Errorf("`version` failed: %v", err)
		return
	}
	if got := strings.TrimSpace(string(out)); got != k.m.Version {
		t.Errorf("`version` printed %q, but the manifest's version is %q", got, k.m.Version)
	}
}

func (k *kit) checkSchemas(t tb) {
	check := func(what string, raw json.RawMessage) {
		if _, err := manifest.CompileSchema(raw); err != nil {
			t.Errorf("%s does not compile as JSON Schema 2020-12: %v", what, err)
		}
	}
	if len(k.m.ConfigSchema) > 0 {
		check("config_schema", k.m.ConfigSchema)
	}
	for _, a := range k.m.Actions {
		check("action "+a.Name+": input_schema", a.InputSchema)
		check("action "+a.Name+": output_schema", a.OutputSchema)
	}
}

// checkFixtures wants a fixture for every action, then runs each: preview
// without side effects, then execute with an output that matches the
// action's output schema.
func (k *kit) checkFixtures(t tb) {
	perAction := map[string]int{}
	for i, f := range k.fixtures {
		if k.m.Action(f.Action) == nil {
			t.Errorf("fixture %d names action %q, which the manifest does not declare (it declares %s)", i, f.Action, k.actionNames())
		}
		perAction[f.Action]++
	}
	for _, a := range k.m.Actions {
		if perAction[a.Name] == 0 {
			t.Errorf("action %q has no fixture: add a connectortest.Fixture that calls it", a.Name)
		}
	}
	seen := map[string]int{}
	for i, f := range k.fixtures {
		seen[f.Action]++
		name := f.Name
		if name == "" {
			name = fmt.Sprintf("%s#%d", f.Action, seen[f.Action])
		}
		t.Run(name, func(t tb) { k.runFixture(t, i, f) })
	}
}

func (k *kit) runFixture(t tb, i int, f Fixture) {
	a := k.m.Action(f.Action)
	if a == nil {
		return // reported by checkFixtures
	}
	req, ok := k.request(t, fmt.Sprintf("fixture %d", i), strconv.Itoa(i), f)
	if !ok {
		return
	}
	k.checkConnection(t, req.GetConnection())
	before := k.sideEffects()
	pv := k.call(t, context.Background(), previewCall, req)
	if after := k.sideEffects(); after != before {
		t.Errorf("preview %q changed SideEffects from %d to %d; a preview must not change anything", f.Action, before, after)
	}
	switch {
	case pv.rpcErr != nil:
		t.Errorf("preview %q: %v", f.Action, pv)
	case pv.err != nil && (f.WantError == 0 || pv.err.GetCode() != connectorv1.ErrorCode(f.WantError)):
		t.Errorf("preview %q: got %v, want success%s", f.Action, pv, orCode(f.WantError))
	}

	ex := k.call(t, context.Background(), executeCall, req)
	if f.WantError != 0 {
		if ex.rpcErr != nil || ex.err.GetCode() != connectorv1.ErrorCode(f.WantError) {
			t.Errorf("execute %q: got %v, want the error %s", f.Action, ex, f.WantError)
		}
		return
	}
	if ex.rpcErr != nil || ex.err != nil {
		t.Errorf("execute %q: got %v, want success", f.Action, ex)
		return
	}
	schema, err := manifest.CompileSchema(a.OutputSchema)
	if err != nil {
		return // reported by checkSchemas
	}
	if problems := violations(schema, ex.json); len(problems) > 0 {
		t.Errorf("execute %q: the output %s does not match the action's output_schema: %s", f.Action, compact(ex.json), strings.Join(problems, "; "))
	}
}

// checkConnection wants a fixture's connection to be one a host could
// send: secrets apart from the config, and both together matching the
// config schema (a host checks that when the connection is made).
func (k *kit) checkConnection(t tb, conn *connectorv1.Connection) {
	fields := map[string]any{}
	if len(conn.GetConfigJson()) > 0 {
		if err := json.Unmarshal(conn.GetConfigJson(), &fields); err != nil {
			t.Errorf("fixture Config %s is not a JSON object: %v", compact(conn.GetConfigJson()), err)
			return
		}
	}
	for _, name := range k.m.SecretFields() {
		if _, ok := fields[name]; ok {
			t.Errorf("fixture Config holds the secret field %q; put it in Fixture.Secrets, where a host sends it", name)
		}
	}
	if len(k.m.ConfigSchema) == 0 {
		return
	}
	schema, err := manifest.CompileSchema(k.m.ConfigSchema)
	if err != nil {
		return // reported by checkSchemas
	}
	for name, value := range conn.GetSecrets() {
		fields[name] = value
	}
	doc, err := json.Marshal(fields)
	if err != nil {
		t.Errorf("fixture connection: %v", err)
		return
	}
	if problems := violations(schema, doc); len(problems) > 0 {
		t.Errorf("fixture Config and Secrets together do not match config_schema, so no host would send them: %s", strings.Join(problems, "; "))
	}
}

func (k *kit) checkUnknownAction(t tb) {
	name := unknownAction
	for k.m.Action(name) != nil {
		name += "_"
	}
	req := &connectorv1.ActionRequest{Action: name, InputJson: []byte("{}"), RunId: "conformance-unknown", WorkspaceId: "conformance"}
	for _, c := range []callKind{previewCall, executeCall} {
		o := k.call(t, context.Background(), c, req)
		if o.rpcErr != nil || o.err.GetCode() != connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION {
			t.Errorf("%s of the undeclared action %q: got %v, want the error %s", c, name, o, connector.CodeUnknownAction)
		}
	}
}

// checkInvalidInput sends each action inputs that break its input schema,
// built by the kit from the schema and the action's first fixture.
func (k *kit) checkInvalidInput(t tb) {
	for _, a := range k.m.Actions {
		t.Run(a.Name, func(t tb) {
			schema, err := manifest.CompileSchema(a.InputSchema)
			if err != nil {
				return // reported by checkSchemas
			}
			base, conn := k.baseCall(a.Name)
			for _, bad := range invalidInputs(a.InputSchema, schema, base) {
				req := &connectorv1.ActionRequest{
					Action: a.Name, InputJson: bad.input, Connection: conn,
					RunId: "conformance-invalid", WorkspaceId: "conformance",
				}
				before := k.sideEffects()
				for _, c := range []callKind{previewCall, executeCall} {
					o := k.call(t, context.Background(), c, req)
					switch {
					case o.rpcErr != nil || o.err.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT:
						t.Errorf("%s %q with %s (%s): got %v, want the error %s", c, a.Name, bad.what, bad.input, o, connector.CodeInvalidInput)
					case len(o.err.GetFields()) == 0:
						t.Errorf("%s %q with %s (%s): got %v without a field pointer; an %s error must say which part of the input is wrong",
							c, a.Name, bad.what, bad.input, o, connector.CodeInvalidInput)
					case bad.pointer != "" && !names(o.err.GetFields(), bad.pointer):
						t.Errorf("%s %q with %s (%s): got %v, want a field pointer %q", c, a.Name, bad.what, bad.input, o, bad.pointer)
					}
				}
				if after := k.sideEffects(); after != before {
					t.Errorf("%s (%s) changed SideEffects from %d to %d; an input that does not match the schema must be refused before anything happens",
						bad.what, bad.input, before, after)
				}
			}
		})
	}
}

// checkDeadline checks that a call whose deadline passes returns, that
// the handler lets go of its work when its context is done (with a Hang
// fixture), and that the connector goes on serving.
func (k *kit) checkDeadline(t tb) {
	i, f, ok := k.firstFixture(func(f Fixture) bool { return f.WantError == 0 && k.m.Action(f.Action) != nil })
	if !ok {
		i, f, ok = k.firstFixture(func(f Fixture) bool { return k.m.Action(f.Action) != nil })
	}
	var req *connectorv1.ActionRequest
	if ok {
		req, ok = k.request(t, fmt.Sprintf("fixture %d", i), strconv.Itoa(i), f)
	} else {
		t.Logf("no fixture of a declared action: no quick deadline check")
	}
	if ok {
		k.quickDeadline(t, f, req)
	}
	if k.hang != nil {
		k.checkHang(t)
	} else {
		t.Logf("this check is limited: without Config.Hang it only sees that a preview with a %v deadline returns, which gRPC "+
			"ensures whatever the handler does, not that the handlers honour their context; set Config.Hang to a fixture "+
			"whose execute waits on the connectortest.HangingPeer it is given", shortDeadline)
	}
	if ok {
		next := k.call(t, context.Background(), previewCall, req)
		if next.rpcErr != nil || (next.err != nil && next.err.GetCode() != connectorv1.ErrorCode(f.WantError)) {
			t.Errorf("preview %q after calls that missed their deadline: got %v; the connector must go on serving", f.Action, next)
		}
	}
}

// quickDeadline previews a fixture with a deadline too short to meet: the
// call must return promptly, with nothing changed. gRPC ends the call at
// the deadline whatever the handler does, so this cannot see the handler;
// checkHang can.
func (k *kit) quickDeadline(t tb, f Fixture, req *connectorv1.ActionRequest) {
	before := k.sideEffects()
	k.p.warmUp(t)
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	started := time.Now()
	o := k.call(t, ctx, previewCall, req)
	elapsed := time.Since(started)
	cancel()
	if elapsed > promptBound {
		t.Errorf("preview %q with a %v deadline returned after %v; it must return promptly once its deadline passes", f.Action, shortDeadline, elapsed.Round(time.Millisecond))
	}
	switch {
	case o.rpcErr != nil:
		if status.Code(o.rpcErr) != codes.DeadlineExceeded {
			t.Errorf("preview %q with a %v deadline: got %v, want gRPC DeadlineExceeded or the error %s", f.Action, shortDeadline, o, connector.CodeRetryable)
		}
	case o.err != nil:
		if c := o.err.GetCode(); c != connectorv1.ErrorCode_ERROR_CODE_RETRYABLE && c != connectorv1.ErrorCode(f.WantError) {
			t.Errorf("preview %q with a %v deadline: got %v, want gRPC DeadlineExceeded or the error %s", f.Action, shortDeadline, o, connector.CodeRetryable)
		}
	default:
		t.Logf("preview %q answered within %v", f.Action, shortDeadline)
	}
	if after := k.sideEffects(); after != before {
		t.Errorf("preview %q changed SideEffects from %d to %d; a preview must not change anything", f.Action, before, after)
	}
}

// checkHang previews, then executes, the Hang fixture with a deadline of
// hangDeadline while the peer it points at never answers.
//
// The gRPC answer cannot tell a handler that honours its context from one
// that ignores it: the deadline travels with the call, so the kit's client
// gives up at the same moment the handler's context ends, and the
// connector's gRPC server ends the call at its deadline whatever the
// handler is doing, dropping a later answer. What the kit can see is the
// peer: a handler that honours its context closes its connection when the
// deadline passes, and one that ignores it (sleeps, or reads without a
// deadline) holds it open, or never gets there, or opens a new one later.
func (k *kit) checkHang(t tb) {
	peer := startHangingPeer(t)
	f := k.hang(peer.HangingPeer)
	if k.m.Action(f.Action) == nil {
		t.Errorf("the Hang fixture names action %q, which the manifest does not declare (it declares %s)", f.Action, k.actionNames())
		return
	}
	req, ok := k.request(t, "the Hang fixture", "hang", f)
	if !ok {
		return
	}
	k.checkConnection(t, req.GetConnection())
	for _, c := range []callKind{previewCall, executeCall} {
		what := fmt.Sprintf("%s %q with the Hang fixture and a %v deadline", c, f.Action, hangDeadline)
		k.p.warmUp(t)
		seen := peer.count()
		before := k.sideEffects()
		started := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
		deadline, _ := ctx.Deadline()
		o := k.call(t, ctx, c, req)
		answered := time.Now()
		cancel()
		answer := o.String()
		if o.rpcErr == nil && o.err == nil {
			answer = "success"
		}
		var conns []peerConnState
		watched := time.Duration(0)
		if c == previewCall && answered.Before(deadline) && peer.count() == seen {
			// A preview that answered in time without the network, as
			// most do: nothing to watch.
			t.Logf("%s: got %s in %v, without connecting to the hanging peer", what, answer, answered.Sub(started).Round(time.Millisecond))
		} else {
			conns = peer.watch(seen, deadline, answered, settle, letGoBound)
			watched = time.Since(deadline).Round(100 * time.Millisecond)
			t.Logf("%s: got %s; the hanging peer saw %d connection(s), %d of them open %v after the deadline",
				what, answer, len(conns), openConns(conns), watched)
		}

		if late := answered.Sub(deadline); late > promptBound {
			t.Errorf("%s returned %v after its deadline; it must return promptly once its deadline passes", what, late.Round(time.Millisecond))
		}
		switch {
		case o.rpcErr != nil:
			if status.Code(o.rpcErr) != codes.DeadlineExceeded {
				t.Errorf("%s: got %v, want gRPC DeadlineExceeded or the error %s", what, o, connector.CodeRetryable)
			}
		case o.err != nil:
			if o.err.GetCode() != connectorv1.ErrorCode_ERROR_CODE_RETRYABLE {
				hint := ""
				if o.err.GetCode() == connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED {
					hint = "; the hanging peer is on 127.0.0.1, which the connector may reach only if Config.Env holds RELAY_EGRESS_ALLOW=127.0.0.1/32"
				}
				t.Errorf("%s: got %v, want the error %s (or gRPC DeadlineExceeded)%s", what, o, connector.CodeRetryable, hint)
			}
		case c == executeCall:
			t.Errorf("%s: got %v, but the hanging peer never answers; the Hang fixture must make execute wait on it", what, o)
		}
		if c == previewCall {
			if after := k.sideEffects(); after != before {
				t.Errorf("%s changed SideEffects from %d to %d; a preview must not change anything", what, before, after)
			}
		}

		if c == executeCall && len(conns) == 0 {
			t.Errorf("%s never connected to the hanging peer at %s (watched until %v after the deadline): either the Hang "+
				"fixture does not point execute at the peer, or the handler was still busy, ignoring its context", what, peer.Addr, watched)
		}
		if n := openConns(conns); n > 0 {
			t.Errorf("%s: %d connection(s) to the hanging peer still open %v after the deadline; a handler must stop when its "+
				"context is done: pass ctx to every dial, request and read, or set the connection's deadline from it", what, n, watched)
		}
		for _, pc := range conns {
			if after := pc.accepted.Sub(deadline); after > lateSlack {
				t.Errorf("%s: connected to the hanging peer %v after the deadline had passed; a handler must not start new work once its context is done",
					what, after.Round(time.Millisecond))
				break
			}
		}
	}
}

// request encodes a fixture as the host would send it; name says which
// fixture in a failure, and id makes the run id and idempotency key.
func (k *kit) request(t tb, name, id string, f Fixture) (*connectorv1.ActionRequest, bool) {
	input, err := encode(f.Input)
	if err != nil {
		t.Errorf("%s: Input: %v", name, err)
		return nil, false
	}
	if input == nil {
		input = []byte("{}")
	}
	config, err := encode(f.Config)
	if err != nil {
		t.Errorf("%s: Config: %v", name, err)
		return nil, false
	}
	return &connectorv1.ActionRequest{
		Action: f.Action, InputJson: input,
		Connection:     &connectorv1.Connection{ConfigJson: config, Secrets: f.Secrets},
		RunId:          "conformance-run-" + id,
		IdempotencyKey: "conformance-key-" + id,
		WorkspaceId:    "conformance",
	}, true
}

// baseCall is what the kit breaks to make invalid inputs: the input and
// connection of the action's first fixture that should succeed.
func (k *kit) baseCall(action string) (map[string]any, *connectorv1.Connection) {
	_, f, ok := k.firstFixture(func(f Fixture) bool { return f.Action == action && f.WantError == 0 })
	if !ok {
		return map[string]any{}, &connectorv1.Connection{}
	}
	conn := &connectorv1.Connection{Secrets: f.Secrets}
	conn.ConfigJson, _ = encode(f.Config)
	base := map[string]any{}
	if raw, err := encode(f.Input); err == nil && raw != nil {
		if json.Unmarshal(raw, &base) != nil {
			base = map[string]any{}
		}
	}
	return base, conn
}

func (k *kit) firstFixture(match func(Fixture) bool) (int, Fixture, bool) {
	for i, f := range k.fixtures {
		if match(f) {
			return i, f, true
		}
	}
	return 0, Fixture{}, false
}

func (k *kit) actionNames() string {
	var names []string
	for _, a := range k.m.Actions {
		names = append(names, fmt.Sprintf("%q", a.Name))
	}
	return strings.Join(names, ", ")
}

func (k *kit) timeout(action string) time.Duration {
	if a := k.m.Action(action); a != nil && a.TimeoutSeconds > 0 {
		return time.Duration(a.TimeoutSeconds) * time.Second
	}
	return defaultCallTimeout
}

type callKind string

const (
	previewCall callKind = "preview"
	executeCall callKind = "execute"
)

// outcome is what one call of Preview or Execute came back with.
type outcome struct {
	json   []byte
	err    *connectorv1.Error
	rpcErr error
}

func (o outcome) String() string {
	switch {
	case o.rpcErr != nil:
		return fmt.Sprintf("gRPC %s (%s)", status.Code(o.rpcErr), status.Convert(o.rpcErr).Message())
	case o.err != nil:
		s := fmt.Sprintf("the error %s %q", connector.Code(o.err.GetCode()), o.err.GetMessage())
		for _, f := range o.err.GetFields() {
			s += fmt.Sprintf(" [%q: %s]", f.GetPointer(), f.GetMessage())
		}
		return s
	default:
		return "success " + compact(o.json)
	}
}

// call makes one call, bounded by the action's timeout, and checks what
// every answer must be: an error with a code, or a result that is JSON.
func (k *kit) call(t tb, ctx context.Context, c callKind, req *connectorv1.ActionRequest) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, k.timeout(req.GetAction()))
	defer cancel()
	var o outcome
	if c == previewCall {
		r, err := k.p.rpc.Preview(ctx, req)
		o = outcome{json: r.GetPreviewJson(), err: r.GetError(), rpcErr: err}
	} else {
		r, err := k.p.rpc.Execute(ctx, req)
		o = outcome{json: r.GetOutputJson(), err: r.GetError(), rpcErr: err}
	}
	switch {
	case o.rpcErr != nil:
	case o.err != nil && o.err.GetCode() == connectorv1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		t.Errorf("%s %q answered an error without a code (ERROR_CODE_UNSPECIFIED): %q; every error needs a code from relay.connector.v1",
			c, req.GetAction(), o.err.GetMessage())
	case o.err == nil && !json.Valid(o.json):
		t.Errorf("%s %q succeeded with %q, which is not JSON", c, req.GetAction(), o.json)
	}
	return o
}

// encode turns a fixture's Input or Config into JSON; nil stays nil.
func encode(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, fmt.Errorf("%q is not JSON", v)
		}
		return v, nil
	default:
		return json.Marshal(v)
	}
}

// violations validates a JSON document against a compiled schema.
func violations(schema *jsonschema.Schema, doc []byte) []string {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	if err := schema.Validate(v); err != nil {
		var out []string
		for _, v := range manifest.Violations(err) {
			out = append(out, v.String())
		}
		return out
	}
	return nil
}

func names(fields []*connectorv1.FieldError, pointer string) bool {
	for _, f := range fields {
		if p := f.GetPointer(); p == pointer || strings.HasPrefix(p, pointer+"/") {
			return true
		}
	}
	return false
}

func orCode(c connector.Code) string {
	if c == 0 {
		return ""
	}
	return " or the error " + c.String()
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// compact shortens JSON for a failure message.
func compact(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		b.Reset()
		b.Write(raw)
	}
	const max = 2000
	if b.Len() > max {
		return b.String()[:max] + "…"
	}
	return b.String()
}
