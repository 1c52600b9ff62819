package connector

import (
	"bytes"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// The module's hand-written codec (wire.go) is held to protobuf's own
// results on the same messages and bytes.

func fullConnection() *connectorv1.Connection {
	return &connectorv1.Connection{ConfigJson: []byte(`{"host":"x"}`),
		Secrets: map[string]string{"token": "s3cret", "password": "hunter2", "": "empty key"}}
}

func fullActionRequest() *connectorv1.ActionRequest {
	return &connectorv1.ActionRequest{
		Action: "send", InputJson: []byte(`{"to":"a@example.com"}`), RunId: "run-1", IdempotencyKey: "k-1",
		WorkspaceId: "ws-1", InputValidated: true, Connection: fullConnection(),
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
}

func fullError() *connectorv1.Error {
	return &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, Message: "bad", RetryAfterMs: 1500,
		Fields: []*connectorv1.FieldError{{Pointer: "/a", Message: "required"}, {Pointer: "/b/0", Message: "too long"}}}
}

func fullHTTPResponse() *connectorv1.HttpResponse {
	return &connectorv1.HttpResponse{Status: 201, Body: []byte("hi"), BodyTruncated: true, Error: fullError(),
		Headers: []*connectorv1.Header{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}, {Name: "B"}}}
}

func fullHTTPRequest() *connectorv1.HttpRequest {
	return &connectorv1.HttpRequest{Method: "POST", Url: "https://example.com/x", Body: []byte(`{}`), TimeoutMs: 2500,
		Headers: []*connectorv1.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "X-Empty"}}}
}

// Every field of every message the module exchanges is set in the values
// above, so that the round trips below cover them all: a field added to
// the protocol fails here until wire.go knows it.
func TestWireKnowsEveryField(t *testing.T) {
	for _, m := range []proto.Message{
		fullActionRequest(), fullConnection(), fullError(), fullError().Fields[0], fullHTTPResponse(),
		fullHTTPResponse().Headers[0], fullHTTPRequest(), &connectorv1.CheckConfigRequest{Connection: fullConnection()},
		&connectorv1.CheckConfigResponse{Error: fullError()}, &connectorv1.DescribeResponse{ManifestJson: []byte("{}")},
		&connectorv1.ExecuteResponse{OutputJson: []byte("{}"), Error: fullError()},
		&connectorv1.PreviewResponse{PreviewJson: []byte("{}"), Error: fullError()},
	} {
		r := m.ProtoReflect()
		fields := r.Descriptor().Fields()
		for i := range fields.Len() {
			if f := fields.Get(i); !r.Has(f) {
				t.Errorf("the test's full %s leaves %s unset: set it, and handle it in wire.go", r.Descriptor().Name(), f.FullName())
			}
		}
	}
	// OpenHostRequest, OpenHostResponse and DialFrame cross gRPC only: a
	// module has no host network to open.
	if n := connectorv1.File_connector_proto.Messages().Len(); n != 16 {
		t.Errorf("the protocol has %d messages, not 16: cover the new ones here and in wire.go if a module exchanges them", n)
	}

	req := fullActionRequest()
	got, err := decodeActionRequest(marshal(t, req))
	if err != nil {
		t.Fatal(err)
	}
	if want := actionRequestFrom(req); !sameActionRequest(got, want) {
		t.Fatalf("ActionRequest decoded as %+v; want %+v", got, want)
	}
	conn, err := decodeCheckConfigRequest(marshal(t, &connectorv1.CheckConfigRequest{Connection: fullConnection()}))
	if err != nil {
		t.Fatal(err)
	}
	if want := connectionFrom(fullConnection()); !sameConnection(conn, want) {
		t.Fatalf("CheckConfigRequest decoded as %+v; want %+v", conn, want)
	}
	resp, err := decodeHTTPResponse(marshal(t, fullHTTPResponse()))
	if err != nil {
		t.Fatal(err)
	}
	if got := httpResponseProto(resp); !proto.Equal(got, fullHTTPResponse()) {
		t.Fatalf("HttpResponse decoded as %v; want %v", got, fullHTTPResponse())
	}

	e := &Error{Code: CodeInvalidInput, Message: "bad", RetryAfter: 1500 * time.Millisecond,
		Fields: []FieldError{{"/a", "required"}, {"/b/0", "too long"}}}
	unmarshalEqual(t, appendHTTPRequest(nil, &httpRequest{method: "POST", url: "https://example.com/x", body: []byte(`{}`), timeoutMS: 2500,
		headers: []header{{"Content-Type", "application/json"}, {"X-Empty", ""}}}), fullHTTPRequest())
	unmarshalEqual(t, appendResult(nil, []byte("{}"), e), &connectorv1.ExecuteResponse{OutputJson: []byte("{}"), Error: fullError()})
	unmarshalEqual(t, appendResult(nil, []byte("{}"), e), &connectorv1.PreviewResponse{PreviewJson: []byte("{}"), Error: fullError()})
	unmarshalEqual(t, appendErrorField(nil, 1, e), &connectorv1.CheckConfigResponse{Error: fullError()})
	unmarshalEqual(t, appendBytesField(nil, 1, []byte("{}")), &connectorv1.DescribeResponse{ManifestJson: []byte("{}")})
}

// The encoders leave out zero values, as proto.Marshal does, but not an
// empty error, whose presence says the call failed.
func TestWireEncodesZeroValues(t *testing.T) {
	for _, tc := range []struct {
		got  []byte
		want proto.Message
	}{
		{appendResult(nil, nil, nil), &connectorv1.ExecuteResponse{}},
		{appendResult(nil, []byte(`{"message":"hello"}`), nil), &connectorv1.ExecuteResponse{OutputJson: []byte(`{"message":"hello"}`)}},
		{appendResult(nil, nil, &Error{}), &connectorv1.ExecuteResponse{Error: &connectorv1.Error{}}},
		{appendResult(nil, nil, &Error{Code: -1}), &connectorv1.ExecuteResponse{Error: &connectorv1.Error{Code: -1}}},
		{appendErrorField(nil, 1, nil), &connectorv1.CheckConfigResponse{}},
		{appendHTTPRequest(nil, &httpRequest{method: "GET", url: "http://a"}), &connectorv1.HttpRequest{Method: "GET", Url: "http://a"}},
	} {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tc.got, want) {
			t.Errorf("encoded % x; proto.Marshal gives % x for %v", tc.got, want, tc.want)
		}
	}
}

// Messages protobuf reads, and so must the module: a field given twice,
// fields it does not know, a known field with another wire type.
func TestWireDecodesAsProtobufDoes(t *testing.T) {
	tag := protowire.AppendTag
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendBytes(tag(nil, num, protowire.BytesType), []byte(s))
	}
	conn := func(fields ...[]byte) []byte {
		return protowire.AppendBytes(tag(nil, 3, protowire.BytesType), slices.Concat(fields...))
	}
	secret := func(k, v string) []byte { return str(2, string(append(str(1, k), str(2, v)...))) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown field", slices.Concat(str(9, "x"), str(1, "echo"))},
		{"field twice", slices.Concat(str(1, "a"), str(1, "b"))},
		{"wrong wire type", protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1)},
		{"fixed32 unknown", protowire.AppendFixed32(tag(nil, 12, protowire.Fixed32Type), 7)},
		{"group unknown", slices.Concat(tag(nil, 12, protowire.StartGroupType), str(1, "x"), tag(nil, 12, protowire.EndGroupType))},
		{"bool over 1", protowire.AppendVarint(tag(nil, 7, protowire.VarintType), 2)},
		{"connection twice merges", slices.Concat(conn(str(1, "{}"), secret("a", "1")), conn(secret("b", "2"), secret("a", "3")))},
		{"secret without a key", conn(str(2, string(str(2, "v"))))},
		{"not UTF-8", str(4, "\xff")},
		{"secret not UTF-8", conn(secret("\xff", "v"))},
		{"truncated", str(1, "abc")[:3]},
		{"field number 0", str(0, "x")},
		{"stray end group", tag(nil, 3, protowire.EndGroupType)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameAsProto(t, tc.b)
			agree(t, decodeEmpty(tc.b), proto.Unmarshal(tc.b, &connectorv1.DescribeRequest{}))
		})
	}
}

// Code's values and names are the protocol's.
func TestCodesAreTheProtocols(t *testing.T) {
	for c := Code(-1); c <= 10; c++ {
		if got, want := c.String(), connectorv1.ErrorCode(c).String(); got != want {
			t.Errorf("Code(%d).String() = %q; the protocol says %q", c, got, want)
		}
	}
	values := connectorv1.ErrorCode(0).Descriptor().Values()
	if values.Len() != len(codeNames) {
		t.Errorf("the protocol has %d error codes; codeNames %d", values.Len(), len(codeNames))
	}
}

func FuzzDecodeActionRequest(f *testing.F) {
	for _, req := range []*connectorv1.ActionRequest{fullActionRequest(), {}, {Action: "echo", InputJson: []byte(`{}`)},
		{Connection: &connectorv1.Connection{}}, {Connection: &connectorv1.Connection{Secrets: map[string]string{"a": ""}}}} {
		f.Add(marshal(f, req))
	}
	f.Fuzz(sameAsProto)
}

func FuzzDecodeCheckConfigRequest(f *testing.F) {
	f.Add(marshal(f, &connectorv1.CheckConfigRequest{Connection: fullConnection()}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeCheckConfigRequest(b)
		var want connectorv1.CheckConfigRequest
		if !agree(t, err, proto.Unmarshal(b, &want)) {
			return
		}
		if w := connectionFrom(want.GetConnection()); !sameConnection(got, w) {
			t.Fatalf("decoded %+v; proto %+v", got, w)
		}
	})
}

func FuzzDecodeHTTPResponse(f *testing.F) {
	f.Add(marshal(f, fullHTTPResponse()))
	f.Add(marshal(f, &connectorv1.HttpResponse{Status: 200}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeHTTPResponse(b)
		want := &connectorv1.HttpResponse{}
		if !agree(t, err, proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, want)) {
			return
		}
		if g := httpResponseProto(got); !proto.Equal(g, want) {
			t.Fatalf("decoded %v; proto %v", g, want)
		}
	})
}

// sameAsProto checks that decodeActionRequest and proto.Unmarshal agree on b.
func sameAsProto(t *testing.T, b []byte) {
	got, err := decodeActionRequest(b)
	var want connectorv1.ActionRequest
	if !agree(t, err, proto.Unmarshal(b, &want)) {
		return
	}
	if w := actionRequestFrom(&want); !sameActionRequest(got, w) {
		t.Fatalf("decoded %+v; proto %+v", got, w)
	}
}

// agree fails t unless both decoders accept b or both refuse it, and
// reports whether both accepted it.
func agree(t *testing.T, got, want error) bool {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("wire.go: %v; proto: %v", got, want)
	}
	return got == nil
}

func sameActionRequest(a, b *actionRequest) bool {
	return a.action == b.action && bytes.Equal(a.input, b.input) && sameConnection(a.conn, b.conn) &&
		a.runID == b.runID && a.idempotencyKey == b.idempotencyKey && a.workspaceID == b.workspaceID &&
		a.inputValidated == b.inputValidated && a.traceParent == b.traceParent
}

func sameConnection(a, b Connection) bool {
	return bytes.Equal(a.Config, b.Config) && maps.Equal(a.Secrets, b.Secrets)
}

func httpResponseProto(r *httpResponse) *connectorv1.HttpResponse {
	p := &connectorv1.HttpResponse{Status: r.status, Body: r.body, BodyTruncated: r.bodyTruncated, Error: r.err.proto()}
	for _, h := range r.headers {
		p.Headers = append(p.Headers, &connectorv1.Header{Name: h.name, Value: h.value})
	}
	return p
}

// The decoders do not copy: byte slices point into the message, capped at
// their field, so a handler appending to its input or config writes into
// memory of its own and leaves the request's other fields intact.
func TestDecodedBytesCannotOverwriteTheRequest(t *testing.T) {
	b := marshal(t, fullActionRequest())
	req, err := decodeActionRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(b)
	_ = append(req.input, "xxxxxxxxxxxxxxxxxxxxxxxx"...)
	_ = append(req.conn.Config, "xxxxxxxxxxxxxxxxxxxxxxxx"...)
	if !bytes.Equal(b, before) {
		t.Fatal("an append to a decoded field wrote over the request's bytes")
	}
	if want := actionRequestFrom(fullActionRequest()); !sameActionRequest(req, want) {
		t.Fatalf("decoded %+v; want %+v", req, want)
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unmarshalEqual(t *testing.T, b []byte, want proto.Message) {
	t.Helper()
	got := want.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("encoded %v; want %v", got, want)
	}
}
