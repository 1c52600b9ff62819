package connector

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

func fullActionRequest() *connectorv1.ActionRequest {
	return &connectorv1.ActionRequest{
		Action: "send", InputJson: []byte(`{"to":"a@example.com"}`), RunId: "run-1", IdempotencyKey: "k-1",
		WorkspaceId: "ws-1", InputValidated: true,
		Connection: &connectorv1.Connection{ConfigJson: []byte(`{"host":"x"}`),
			Secrets: map[string]string{"token": "s3cret", "password": "hunter2", "": "empty key"}},
	}
}

// Every field of ActionRequest and Connection is set in fullActionRequest
// and decoded by the fast path: a field added to the protocol fails this
// until decodeActionRequest knows it (until then the fast path leaves
// such a message to proto, correctly but slowly).
func TestDecodeActionRequestKnowsEveryField(t *testing.T) {
	req := fullActionRequest()
	for _, m := range []protoreflect.Message{req.ProtoReflect(), req.Connection.ProtoReflect()} {
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			if f := fields.Get(i); !m.Has(f) {
				t.Errorf("fullActionRequest leaves %s unset: set it, and decode it in decodeActionRequest", f.FullName())
			}
		}
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeActionRequest(b)
	if !ok {
		t.Fatal("the fast path gave up on a message with every field set")
	}
	if !proto.Equal(got, req) {
		t.Fatalf("decoded %v; want %v", got, req)
	}
}

// The fast path gives up, leaving the message to proto, on what it does
// not handle.
func TestDecodeActionRequestGivesUp(t *testing.T) {
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendBytes(tag(nil, num, protowire.BytesType), []byte(s))
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"unknown field", str(9, "x")},
		{"field twice", append(str(1, "a"), str(1, "b")...)},
		{"wrong wire type", protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1)},
		{"not UTF-8", str(4, "\xff")},
		{"bool over 1", protowire.AppendVarint(tag(nil, 7, protowire.VarintType), 2)},
		{"truncated", str(1, "abc")[:3]},
		{"connection twice", append(str(3, ""), str(3, "")...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if req, ok := decodeActionRequest(tc.b); ok {
				t.Fatalf("decoded %v; want it left to proto", req)
			}
		})
	}
}

// appendOutput encodes what proto.Marshal does.
func TestAppendOutput(t *testing.T) {
	for _, out := range []string{"", `{}`, `{"message":"hello"}`} {
		want, err := proto.Marshal(&connectorv1.ExecuteResponse{OutputJson: []byte(out)})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendOutput(nil, []byte(out)); string(got) != string(want) {
			t.Errorf("appendOutput(%q) = % x; want % x", out, got, want)
		}
		var p connectorv1.PreviewResponse
		if err := proto.Unmarshal(appendOutput(nil, []byte(out)), &p); err != nil || string(p.GetPreviewJson()) != out {
			t.Errorf("as a PreviewResponse: %q, %v", p.GetPreviewJson(), err)
		}
	}
}

// FuzzDecodeActionRequest: whatever the fast path decodes, proto.Unmarshal
// decodes to the same message.
func FuzzDecodeActionRequest(f *testing.F) {
	for _, req := range []*connectorv1.ActionRequest{fullActionRequest(), {}, {Action: "echo", InputJson: []byte(`{}`)},
		{Connection: &connectorv1.Connection{}}, {Connection: &connectorv1.Connection{Secrets: map[string]string{"a": ""}}}} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeActionRequest(b)
		if !ok {
			return
		}
		var want connectorv1.ActionRequest
		if err := proto.Unmarshal(b, &want); err != nil {
			t.Fatalf("the fast path decoded what proto refuses (%v): %v", err, got)
		}
		if !proto.Equal(got, &want) {
			t.Fatalf("fast path %v; proto %v", got, &want)
		}
	})
}
