package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

type mailConfig struct {
	Host     string `json:"host" jsonschema:"the SMTP server"`
	Port     int    `json:"port,omitempty"`
	User     string `json:"user"`
	Password string `json:"password" relay:"secret"`
}

type sendInput struct {
	To      []string          `json:"to"`
	Subject string            `json:"subject"`
	Body    string            `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Options *sendOptions      `json:"options,omitempty"`
}

type sendOptions struct {
	Priority int `json:"priority"`
}

type sendOutput struct {
	MessageID string `json:"message_id"`
	Accepted  int    `json:"accepted"`
}

// newServer serves a connector with one action, send, whose execute is
// given; preview is the SDK's default.
func newServer(t *testing.T, execute connector.ExecuteFunc[sendInput, sendOutput]) *connector.Server {
	t.Helper()
	s, err := connector.NewServer(&connector.Connector{
		Name: "mail", Version: "1.2.3", Title: "Mail", Config: mailConfig{}, Egress: []string{"*"},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "send", Title: "Send", SideEffect: connector.Write}, nil, execute),
		},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sent(context.Context, connector.Request[sendInput]) (sendOutput, error) {
	return sendOutput{MessageID: "m1", Accepted: 1}, nil
}

func parse(t *testing.T, s *connector.Server) *manifest.Manifest {
	t.Helper()
	resp, err := s.Describe(context.Background(), &connectorv1.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetManifestJson()) != string(s.Manifest()) {
		t.Errorf("Describe and Manifest differ")
	}
	m, err := manifest.Parse(resp.GetManifestJson())
	if err != nil {
		t.Fatalf("the manifest does not parse: %v\n%s", err, resp.GetManifestJson())
	}
	return m
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return b.String()
}

type objectSchema struct {
	Type                 string                     `json:"type"`
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
}

func decodeSchema(t *testing.T, raw json.RawMessage) objectSchema {
	t.Helper()
	var s objectSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return s
}

func TestManifestFromGoTypes(t *testing.T) {
	m := parse(t, newServer(t, sent))
	if m.Name != "mail" || m.Version != "1.2.3" || m.Runtime != manifest.RuntimeNative || m.Protocol != protocol.Version {
		t.Errorf("manifest header: %+v", m)
	}

	config := decodeSchema(t, m.ConfigSchema)
	if want := []string{"host", "user", "password"}; !reflect.DeepEqual(config.Required, want) {
		t.Errorf("config required = %q, want %q (fields without omitempty)", config.Required, want)
	}
	if got := m.SecretFields(); !reflect.DeepEqual(got, []string{"password"}) {
		t.Errorf("secret fields = %q, want [password]", got)
	}
	var password map[string]any
	if err := json.Unmarshal(config.Properties["password"], &password); err != nil {
		t.Fatal(err)
	}
	if password[manifest.SecretKeyword] != true || password["writeOnly"] != true {
		t.Errorf("password schema = %v, want %s and writeOnly", password, manifest.SecretKeyword)
	}
	if !strings.Contains(compact(t, config.Properties["host"]), `"description":"the SMTP server"`) {
		t.Errorf("host schema %s lacks the jsonschema tag's description", config.Properties["host"])
	}
	if strings.Contains(string(config.Properties["user"]), manifest.SecretKeyword) {
		t.Errorf("user is not secret: %s", config.Properties["user"])
	}

	a := m.Action("send")
	if a == nil {
		t.Fatal("no action send")
	}
	in := decodeSchema(t, a.InputSchema)
	if in.Type != "object" || !reflect.DeepEqual(in.Required, []string{"to", "subject"}) {
		t.Errorf("input schema: type %q required %q", in.Type, in.Required)
	}
	if in.AdditionalProperties == nil || *in.AdditionalProperties {
		t.Errorf("input schema allows unknown properties: %s", a.InputSchema)
	}
	out := decodeSchema(t, a.OutputSchema)
	if !reflect.DeepEqual(out.Required, []string{"message_id", "accepted"}) {
		t.Errorf("output required %q", out.Required)
	}
	if a.SideEffect != "write" || a.NeedsConfirmation() {
		t.Errorf("side effect %q, needs confirmation %v", a.SideEffect, a.NeedsConfirmation())
	}
}

func TestActionSpecToManifest(t *testing.T) {
	no := false
	explicitIn := json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}}}`)
	s, err := connector.NewServer(&connector.Connector{
		Name: "files", Version: "0.1.0-beta.1", Title: "Files",
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{
				Name: "delete", Title: "Delete", SideEffect: connector.Destructive, Idempotent: true,
				Timeout: 90_000_000_000, InputSchema: explicitIn, OutputSchema: json.RawMessage(`true`),
			}, nil, func(context.Context, connector.Request[map[string]any]) (any, error) { return nil, nil }),
			connector.NewAction(connector.ActionSpec{
				Name: "purge", Title: "Purge", SideEffect: connector.Destructive, RequiresConfirmation: &no,
			}, nil, func(context.Context, connector.Request[struct{}]) (struct{}, error) { return struct{}{}, nil }),
		},
	}, manifest.RuntimeWASM)
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, s)
	if m.Runtime != manifest.RuntimeWASM || len(m.ConfigSchema) != 0 {
		t.Errorf("runtime %q, config schema %s", m.Runtime, m.ConfigSchema)
	}
	del, purge := m.Action("delete"), m.Action("purge")
	if !del.NeedsConfirmation() || !del.Idempotent || del.TimeoutSeconds != 90 {
		t.Errorf("delete: %+v", del)
	}
	if compact(t, del.InputSchema) != string(explicitIn) || compact(t, del.OutputSchema) != "true" {
		t.Errorf("delete schemas: %s %s", del.InputSchema, del.OutputSchema)
	}
	if purge.NeedsConfirmation() {
		t.Errorf("purge overrides confirmation: %+v", purge)
	}
}

func TestNewServerRefusesABadDeclaration(t *testing.T) {
	ok := func(context.Context, connector.Request[struct{}]) (struct{}, error) { return struct{}{}, nil }
	action := connector.NewAction(connector.ActionSpec{Name: "run", Title: "Run", SideEffect: connector.None}, nil, ok)
	for name, c := range map[string]*connector.Connector{
		"name uppercase": {Name: "Mail", Version: "1.0.0", Title: "M", Actions: []connector.Action{action}},
		"version with v": {Name: "mail", Version: "v1.0.0", Title: "M", Actions: []connector.Action{action}},
		"no actions":     {Name: "mail", Version: "1.0.0", Title: "M"},
		"duplicate action": {Name: "mail", Version: "1.0.0", Title: "M",
			Actions: []connector.Action{action, action}},
		"config not a struct": {Name: "mail", Version: "1.0.0", Title: "M", Config: "x", Actions: []connector.Action{action}},
		"input not an object": {Name: "mail", Version: "1.0.0", Title: "M", Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "run", Title: "Run", SideEffect: connector.None}, nil,
				func(context.Context, connector.Request[string]) (struct{}, error) { return struct{}{}, nil }),
		}},
		"bad side effect": {Name: "mail", Version: "1.0.0", Title: "M", Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "run", Title: "Run", SideEffect: "maybe"}, nil, ok),
		}},
		"bad egress": {Name: "mail", Version: "1.0.0", Title: "M", Egress: []string{"https://x.example"}, Actions: []connector.Action{action}},
		"explicit input schema does not compile": {Name: "mail", Version: "1.0.0", Title: "M", Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "run", Title: "Run", SideEffect: connector.None,
				InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"strin"}}}`)}, nil, ok),
		}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := connector.NewServer(c, manifest.RuntimeNative); err == nil {
				t.Error("NewServer accepted it")
			}
		})
	}
}

// A Timeout becomes whole seconds in the manifest, rounded up so a call
// never gets less time than the author asked for; one the manifest cannot
// say is refused, not silently turned into the host's default.
func TestActionTimeout(t *testing.T) {
	declare := func(timeout time.Duration) (*connector.Server, error) {
		return connector.NewServer(&connector.Connector{
			Name: "mail", Version: "1.0.0", Title: "M",
			Actions: []connector.Action{connector.NewAction(connector.ActionSpec{
				Name: "run", Title: "Run", SideEffect: connector.None, Timeout: timeout,
			}, nil, func(context.Context, connector.Request[struct{}]) (struct{}, error) { return struct{}{}, nil })},
		}, manifest.RuntimeNative)
	}
	for _, tc := range []struct {
		timeout time.Duration
		want    int
	}{
		{0, 0}, // the host's default
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{time.Second + time.Nanosecond, 2},
		{30 * time.Second, 30},
		{899*time.Second + time.Millisecond, 900},
		{15 * time.Minute, 900},
	} {
		s, err := declare(tc.timeout)
		if err != nil {
			t.Errorf("Timeout %v: %v", tc.timeout, err)
			continue
		}
		if got := parse(t, s).Action("run").TimeoutSeconds; got != tc.want {
			t.Errorf("Timeout %v: timeout_seconds %d, want %d", tc.timeout, got, tc.want)
		}
	}
	for _, tc := range []struct {
		timeout time.Duration
		want    string
	}{
		{time.Nanosecond, "timeout 1ns is under a second"},
		{500 * time.Millisecond, "timeout 500ms is under a second"},
		{999 * time.Millisecond, "timeout 999ms is under a second"},
		{15*time.Minute + time.Nanosecond, "timeout 15m0.000000001s is over 15 minutes"},
		{time.Hour, "timeout 1h0m0s is over 15 minutes"},
		{-time.Second, "timeout -1s is negative"},
	} {
		_, err := declare(tc.timeout)
		if err == nil || !strings.Contains(err.Error(), "action run: "+tc.want) {
			t.Errorf("Timeout %v: err = %v, want one saying %q", tc.timeout, err, tc.want)
		}
	}
}

func TestNewServerReadsEgressAllow(t *testing.T) {
	t.Setenv(protocol.EnvEgressAllow, "127.0.0.1/32, not-a-cidr")
	_, err := connector.NewServer(&connector.Connector{Name: "mail", Version: "1.0.0", Title: "M"}, manifest.RuntimeNative)
	if err == nil || !strings.Contains(err.Error(), "not-a-cidr") {
		t.Errorf("err = %v, want one naming the bad CIDR", err)
	}
}

// call runs preview or execute of action and returns the output and error.
func call(t *testing.T, s *connector.Server, execute bool, req *connectorv1.ActionRequest) ([]byte, *connectorv1.Error) {
	t.Helper()
	if execute {
		r, err := s.Execute(context.Background(), req)
		if err != nil {
			t.Fatalf("execute: transport error %v; classified failures belong in the response", err)
		}
		return r.GetOutputJson(), r.GetError()
	}
	r, err := s.Preview(context.Background(), req)
	if err != nil {
		t.Fatalf("preview: transport error %v; classified failures belong in the response", err)
	}
	return r.GetPreviewJson(), r.GetError()
}

func pointers(e *connectorv1.Error) []string {
	var out []string
	for _, f := range e.GetFields() {
		out = append(out, f.GetPointer())
	}
	return out
}

func TestInputValidation(t *testing.T) {
	executed := 0
	s := newServer(t, func(context.Context, connector.Request[sendInput]) (sendOutput, error) {
		executed++
		return sendOutput{}, nil
	})
	for _, tc := range []struct {
		name, input  string
		wantPointers []string
	}{
		{"not JSON", `{"to":`, nil},
		{"not an object", `["a"]`, []string{""}},
		{"missing required", `{"to":["a@example.com"]}`, []string{""}},
		{"wrong type", `{"to":"a@example.com","subject":"s"}`, []string{"/to"}},
		{"wrong item type", `{"to":[1],"subject":"s"}`, []string{"/to/0"}},
		{"wrong nested type", `{"to":[],"subject":"s","options":{"priority":"high"}}`, []string{"/options/priority"}},
		{"unknown field", `{"to":[],"subject":"s","bcc":["x"]}`, []string{""}},
		{"unknown nested field", `{"to":[],"subject":"s","options":{"priority":1,"x":1}}`, []string{"/options"}},
		{"several", `{"to":"x","subject":1}`, []string{"/subject", "/to"}},
		{"empty input is the empty object", ``, []string{""}},
	} {
		for _, execute := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				out, e := call(t, s, execute, &connectorv1.ActionRequest{Action: "send", InputJson: []byte(tc.input)})
				if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
					t.Fatalf("got %s %v, want INVALID_INPUT", out, e)
				}
				if got := pointers(e); tc.wantPointers != nil && !reflect.DeepEqual(got, tc.wantPointers) {
					t.Errorf("pointers %q, want %q (%v)", got, tc.wantPointers, e)
				}
			})
		}
	}
	if executed != 0 {
		t.Errorf("the handler ran %d times for invalid inputs", executed)
	}
}

// An input decoded into a map or taken as a json.RawMessage (which skip
// the struct's Decoder) is refused the same way when it is not one JSON
// value, validated by the host or not; a RawMessage output is passed on
// as the handler returned it.
func TestUntypedInputs(t *testing.T) {
	anyObject := json.RawMessage(`{"type":"object"}`)
	s, err := connector.NewServer(&connector.Connector{
		Name: "pass", Version: "1.0.0", Title: "Pass",
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "raw", Title: "Raw", SideEffect: connector.None, InputSchema: anyObject, OutputSchema: anyObject}, nil,
				func(_ context.Context, req connector.Request[json.RawMessage]) (json.RawMessage, error) {
					return req.Input, nil
				}),
			connector.NewAction(connector.ActionSpec{Name: "map", Title: "Map", SideEffect: connector.None, InputSchema: anyObject, OutputSchema: anyObject}, nil,
				func(_ context.Context, req connector.Request[map[string]any]) (map[string]any, error) {
					return req.Input, nil
				}),
		},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"raw", "map"} {
		for _, validated := range []bool{false, true} {
			for _, bad := range []string{`{"a":`, `{"a":1} {"a":2}`, `{"a":1} x`, `{"a":1}]`} {
				t.Run(fmt.Sprintf("%s/validated=%v/%s", action, validated, bad), func(t *testing.T) {
					out, e := call(t, s, true, &connectorv1.ActionRequest{Action: action, InputJson: []byte(bad), InputValidated: validated})
					if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
						t.Fatalf("got %s %v, want INVALID_INPUT", out, e)
					}
				})
			}
		}
	}
	in := "{\"b\": [1, 2],\n \"a\": \"<x>\"}"
	out, e := call(t, s, true, &connectorv1.ActionRequest{Action: "raw", InputJson: []byte(in), InputValidated: true})
	if e != nil || string(out) != in {
		t.Errorf("raw: got %s %v; want the input as it came, %s", out, e, in)
	}
	out, e = call(t, s, true, &connectorv1.ActionRequest{Action: "map", InputJson: []byte(in), InputValidated: true})
	if e != nil || string(out) != `{"a":"\u003cx\u003e","b":[1,2]}` {
		t.Errorf("map: got %s %v; want it re-encoded", out, e)
	}
}

// A host that has validated the input against the action's schema in the
// manifest says so with input_validated, and the server skips its own
// check; without the flag it checks as before. The typed decode runs
// either way, and its failures stay INVALID_INPUT.
func TestInputValidatedByTheHost(t *testing.T) {
	var handled []sendInput
	record := func(_ context.Context, req connector.Request[sendInput]) (sendOutput, error) {
		handled = append(handled, req.Input)
		return sendOutput{MessageID: "m1"}, nil
	}
	s, err := connector.NewServer(&connector.Connector{
		Name: "mail", Version: "1.2.3", Title: "Mail",
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "send", Title: "Send", SideEffect: connector.Write},
				func(ctx context.Context, req connector.Request[sendInput]) (any, error) { return record(ctx, req) },
				record),
		},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	// Valid for the Go type, but the schema requires "subject".
	const noSubject = `{"to":["a@example.com"]}`
	for _, tc := range []struct {
		name, input  string
		validated    bool
		wantInvalid  bool
		wantPointers []string
	}{
		{"schema violation, not validated by the host", noSubject, false, true, []string{""}},
		{"schema violation, validated by the host", noSubject, true, false, nil},
		{"wrong type, not validated by the host", `{"to":"a@example.com","subject":"s"}`, false, true, []string{"/to"}},
		{"wrong type, validated by the host", `{"to":"a@example.com","subject":"s"}`, true, true, []string{"/to"}},
		{"unknown field, validated by the host", `{"to":[],"subject":"s","bcc":["x"]}`, true, true, nil},
		{"not JSON, validated by the host", `{"to":`, true, true, nil},
		{"two values, validated by the host", `{"to":["a@example.com"]} {"to":["b@example.com"]}`, true, true, nil},
		{"trailing data, validated by the host", `{"to":["a@example.com"]} x`, true, true, nil},
		{"trailing space, validated by the host", "{\"to\":[\"a@example.com\"]}\n ", true, false, nil},
	} {
		for _, execute := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/execute=%v", tc.name, execute), func(t *testing.T) {
				handled = nil
				out, e := call(t, s, execute, &connectorv1.ActionRequest{Action: "send", InputJson: []byte(tc.input), InputValidated: tc.validated})
				if !tc.wantInvalid {
					if e != nil || len(handled) != 1 {
						t.Fatalf("got %s %v after %d handler calls; want the handler to run once", out, e, len(handled))
					}
					if !slices.Equal(handled[0].To, []string{"a@example.com"}) || handled[0].Subject != "" {
						t.Errorf("the handler got %+v", handled[0])
					}
					return
				}
				if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
					t.Fatalf("got %s %v, want INVALID_INPUT", out, e)
				}
				if got := pointers(e); !reflect.DeepEqual(got, tc.wantPointers) {
					t.Errorf("pointers %q, want %q (%v)", got, tc.wantPointers, e)
				}
				if len(handled) != 0 {
					t.Errorf("the handler ran for an invalid input")
				}
			})
		}
	}
}

// A field the Go type lacks is refused even when an explicit schema lets
// it through, so that a misspelt field is an error, not a silent no-op.
func TestUnknownFieldRefusedByDecoding(t *testing.T) {
	s, err := connector.NewServer(&connector.Connector{
		Name: "mail", Version: "1.0.0", Title: "Mail",
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "send", Title: "Send", SideEffect: connector.Write,
				InputSchema: json.RawMessage(`{"type":"object"}`)}, nil, sent),
		},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	_, e := call(t, s, true, &connectorv1.ActionRequest{Action: "send", InputJson: []byte(`{"to":[],"subjetc":"typo"}`)})
	if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT || !strings.Contains(e.GetMessage(), "subjetc") {
		t.Errorf("got %v, want INVALID_INPUT naming the field", e)
	}
	_, e = call(t, s, true, &connectorv1.ActionRequest{Action: "send", InputJson: []byte(`{"to":"x"}`)})
	if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT || !reflect.DeepEqual(pointers(e), []string{"/to"}) {
		t.Errorf("got %v, want INVALID_INPUT at /to", e)
	}
}

func TestUnknownAction(t *testing.T) {
	s := newServer(t, sent)
	for _, execute := range []bool{false, true} {
		_, e := call(t, s, execute, &connectorv1.ActionRequest{Action: "nope", InputJson: []byte(`{}`)})
		if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION || !strings.Contains(e.GetMessage(), `"nope"`) {
			t.Errorf("got %v, want UNKNOWN_ACTION naming the action", e)
		}
	}
}

func TestRequestCarriesTheCall(t *testing.T) {
	var got connector.Request[sendInput]
	s := newServer(t, func(_ context.Context, req connector.Request[sendInput]) (sendOutput, error) {
		got = req
		return sendOutput{MessageID: "m1", Accepted: len(req.Input.To)}, nil
	})
	out, e := call(t, s, true, &connectorv1.ActionRequest{
		Action: "send", InputJson: []byte(`{"to":["a@example.com","b@example.com"],"subject":"hi"}`),
		Connection: &connectorv1.Connection{ConfigJson: []byte(`{"host":"smtp.example.com","user":"u"}`), Secrets: map[string]string{"password": "pw"}},
		RunId:      "run_1", IdempotencyKey: "key_1", WorkspaceId: "ws_1",
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	})
	if e != nil {
		t.Fatal(e)
	}
	if string(out) != `{"message_id":"m1","accepted":2}` {
		t.Errorf("output %s", out)
	}
	if got.RunID != "run_1" || got.IdempotencyKey != "key_1" || got.WorkspaceID != "ws_1" || got.Egress == nil ||
		got.TraceParent != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("request %+v", got)
	}
	if !slices.Equal(got.Input.To, []string{"a@example.com", "b@example.com"}) || got.Input.Subject != "hi" {
		t.Errorf("input %+v", got.Input)
	}
	var cfg mailConfig
	if err := got.Connection.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg != (mailConfig{Host: "smtp.example.com", User: "u", Password: "pw"}) {
		t.Errorf("config %+v", cfg)
	}
}

func TestDefaultPreviewShowsTheInput(t *testing.T) {
	s := newServer(t, func(context.Context, connector.Request[sendInput]) (sendOutput, error) {
		t.Error("preview ran execute")
		return sendOutput{}, nil
	})
	out, e := call(t, s, false, &connectorv1.ActionRequest{Action: "send", InputJson: []byte(`{"to":["a@example.com"],"subject":"hi"}`)})
	if e != nil {
		t.Fatal(e)
	}
	want := `{"action":"send","input":{"to":["a@example.com"],"subject":"hi"}}`
	if string(out) != want {
		t.Errorf("preview %s, want %s", out, want)
	}
}

func TestResultOverTheCapIsRefused(t *testing.T) {
	var size int
	s, err := connector.NewServer(&connector.Connector{
		Name: "big", Version: "1.0.0", Title: "Big",
		Actions: []connector.Action{connector.NewAction(connector.ActionSpec{Name: "make", Title: "Make", SideEffect: connector.None},
			func(context.Context, connector.Request[struct{}]) (any, error) { return strings.Repeat("x", size), nil },
			func(context.Context, connector.Request[struct{}]) (string, error) {
				return strings.Repeat("x", size), nil
			})},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	for _, execute := range []bool{false, true} {
		size = protocol.MaxMessageSize
		out, e := call(t, s, execute, &connectorv1.ActionRequest{Action: "make"})
		if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE || !strings.Contains(e.GetMessage(), "limit") || out != nil {
			t.Errorf("execute=%v: %d-byte result: got %v, want MESSAGE_TOO_LARGE naming the limit", execute, size, e)
		}
		size = protocol.MaxMessageSize / 2
		if out, e := call(t, s, execute, &connectorv1.ActionRequest{Action: "make"}); e != nil || len(out) != size+2 {
			t.Errorf("execute=%v: %d-byte result: got %d bytes, %v", execute, size, len(out), e)
		}
	}
}

func TestUnencodableResult(t *testing.T) {
	s, err := connector.NewServer(&connector.Connector{
		Name: "odd", Version: "1.0.0", Title: "Odd",
		Actions: []connector.Action{connector.NewAction(connector.ActionSpec{Name: "make", Title: "Make", SideEffect: connector.None}, nil,
			func(context.Context, connector.Request[struct{}]) (any, error) { return func() {}, nil })},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	if _, e := call(t, s, true, &connectorv1.ActionRequest{Action: "make"}); e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INTERNAL {
		t.Errorf("got %v, want INTERNAL", e)
	}
}
