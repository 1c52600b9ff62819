package connector

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// A WASM module built with this package speaks the protocol's messages
// (sdk/protocol/connector.proto) without the generated protobuf code: that
// code and the reflection under it were a quarter of a module's code, which
// the host decodes and validates at every load, and ran slowly compiled to
// WebAssembly (decoding a request with a connection's secrets took ~11 µs
// of a ~130 µs echo call). So the module decodes and encodes the few
// messages it exchanges here, with protowire, as protobuf does: an unknown
// field, or a known one with another wire type, is skipped; a field given
// again replaces a scalar and merges into a message; a string must be
// UTF-8. The tests hold these functions to proto.Unmarshal's results on
// the same bytes (FuzzDecodeActionRequest and the others) and to every
// field of the messages (TestWireKnowsEveryField).

// errNotUTF8 is what proto3 says of a string field that is not UTF-8.
var errNotUTF8 = errors.New("a string field is not valid UTF-8")

// fields walks the fields of the message in b, one at a time: the field's
// number and wire type, and its value, the varint v for VarintType or the
// bytes val for BytesType. Other wire types are checked and skipped, as a
// decoder skips the fields it does not know. A struct walked in a loop
// rather than a callback: compiled to WebAssembly, every closure a decoder
// made was an allocation, and allocations are most of what a small
// request costs there.
type fields struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	v   uint64
	val []byte
	err error
}

// next moves to the next varint or bytes field and reports whether there
// is one; false at the end, and once err is set, by a field that does not
// parse or by a decoder refusing a value.
func (f *fields) next() bool {
	for f.err == nil && len(f.b) > 0 {
		num, typ, n := protowire.ConsumeTag(f.b)
		if n < 0 {
			f.err = protowire.ParseError(n)
			return false
		}
		if num > protowire.MaxValidNumber {
			f.err = fmt.Errorf("field number %d is over the largest, %d", num, protowire.MaxValidNumber)
			return false
		}
		f.b = f.b[n:]
		f.num, f.typ, f.v, f.val = num, typ, 0, nil
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(f.b)
		case protowire.BytesType:
			f.val, n = protowire.ConsumeBytes(f.b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, f.b)
		}
		if n < 0 {
			f.err = protowire.ParseError(n)
			return false
		}
		f.b = f.b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			return true
		}
	}
	return false
}

// view is the current bytes field as a string that points into the
// message, for a string used only during the call (the action's name).
func (f *fields) view() string {
	if !utf8.Valid(f.val) {
		f.err = errNotUTF8
		return ""
	}
	return unsafe.String(unsafe.SliceData(f.val), len(f.val))
}

// str is the current bytes field as a string of its own. A string a
// handler may keep (an id, a secret, a header) is copied: pointing into
// the message, it would keep the whole message, up to 4 MiB with another
// call's secrets in it, alive as long as the handler kept it.
func (f *fields) str() string {
	return strings.Clone(f.view())
}

// bytes is the current bytes field, not copied: the message's bytes are
// handed over by the decoders' callers (a request's block from
// relay_alloc, an HTTP answer read from the host), never written again,
// and freed with the last slice that uses them. It is capped at its length
// so that an append to it cannot write over the next field.
func (f *fields) bytes() []byte {
	if len(f.val) == 0 {
		return nil
	}
	return f.val[:len(f.val):len(f.val)]
}

// decodeEmpty checks a message with no fields, such as a DescribeRequest.
func decodeEmpty(b []byte) error {
	f := fields{b: b}
	for f.next() {
	}
	return f.err
}

// decodeActionRequest decodes an ActionRequest.
func decodeActionRequest(b []byte) (*actionRequest, error) {
	req := &actionRequest{}
	f := fields{b: b}
	for f.next() {
		switch {
		case f.num == 7 && f.typ == protowire.VarintType:
			req.inputValidated = protowire.DecodeBool(f.v)
		case f.typ != protowire.BytesType:
		case f.num == 1:
			req.action = f.view()
		case f.num == 2:
			req.input = f.bytes()
		case f.num == 3:
			f.err = decodeConnection(f.val, &req.conn)
		case f.num == 4:
			req.runID = f.str()
		case f.num == 5:
			req.idempotencyKey = f.str()
		case f.num == 6:
			req.workspaceID = f.str()
		case f.num == 8:
			req.traceParent = f.str()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	return req, nil
}

// decodeCheckConfigRequest decodes a CheckConfigRequest: its connection.
func decodeCheckConfigRequest(b []byte) (Connection, error) {
	var c Connection
	f := fields{b: b}
	for f.next() {
		if f.num == 1 && f.typ == protowire.BytesType {
			f.err = decodeConnection(f.val, &c)
		}
	}
	return c, f.err
}

// decodeConnection merges a Connection into c.
func decodeConnection(b []byte, c *Connection) error {
	f := fields{b: b}
	for f.next() {
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 1:
			c.Config = f.bytes()
		case 2:
			key, value, err := decodeStringPair(f.val)
			if err != nil {
				return err
			}
			if c.Secrets == nil {
				c.Secrets = make(map[string]string, 1)
			}
			c.Secrets[key] = value
		}
	}
	return f.err
}

// decodeStringPair decodes a message of two strings, fields 1 and 2: an
// entry of a map<string, string>, a Header, a FieldError.
func decodeStringPair(b []byte) (first, second string, err error) {
	f := fields{b: b}
	for f.next() {
		switch {
		case f.typ != protowire.BytesType:
		case f.num == 1:
			first = f.str()
		case f.num == 2:
			second = f.str()
		}
	}
	return first, second, f.err
}

// decodeError merges an Error into e.
func decodeError(b []byte, e *Error) error {
	f := fields{b: b}
	for f.next() {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			e.Code = Code(int32(f.v))
		case f.num == 3 && f.typ == protowire.VarintType:
			e.RetryAfter = time.Duration(int64(f.v)) * time.Millisecond
		case f.typ != protowire.BytesType:
		case f.num == 2:
			e.Message = f.str()
		case f.num == 4:
			var fe FieldError
			fe.Pointer, fe.Message, f.err = decodeStringPair(f.val)
			e.Fields = append(e.Fields, fe)
		}
	}
	return f.err
}

// header is one HTTP header line.
type header struct{ name, value string }

// httpRequest is the protocol's HttpRequest, which a module passes to the
// relay.http_request host function.
type httpRequest struct {
	method    string
	url       string
	headers   []header
	body      []byte
	timeoutMS int64
}

// httpResponse is the protocol's HttpResponse, the host's answer.
type httpResponse struct {
	status        int32
	headers       []header
	body          []byte
	bodyTruncated bool
	err           *Error
}

// decodeHTTPResponse decodes an HttpResponse.
func decodeHTTPResponse(b []byte) (*httpResponse, error) {
	r := &httpResponse{}
	f := fields{b: b}
	for f.next() {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			r.status = int32(f.v)
		case f.num == 4 && f.typ == protowire.VarintType:
			r.bodyTruncated = protowire.DecodeBool(f.v)
		case f.typ != protowire.BytesType:
		case f.num == 2:
			var h header
			h.name, h.value, f.err = decodeStringPair(f.val)
			r.headers = append(r.headers, h)
		case f.num == 3:
			r.body = f.bytes()
		case f.num == 5:
			if r.err == nil {
				r.err = &Error{}
			}
			f.err = decodeError(f.val, r.err)
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	return r, nil
}

// The encoders leave out fields that hold their zero value, as protobuf
// does for proto3.

func appendBytesField(dst []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

func appendStringField(dst []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, v)
}

func appendVarintField(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

// appendMessageField appends an embedded message, which may be empty:
// its presence is what it says.
func appendMessageField(dst []byte, num protowire.Number, msg []byte) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, msg)
}

func appendStringPair(dst []byte, num protowire.Number, first, second string) []byte {
	return appendMessageField(dst, num, appendStringField(appendStringField(nil, 1, first), 2, second))
}

// appendErrorField appends e as the Error field num; nothing for nil.
func appendErrorField(dst []byte, num protowire.Number, e *Error) []byte {
	if e == nil {
		return dst
	}
	var m []byte
	m = appendVarintField(m, 1, uint64(int64(e.Code)))
	m = appendStringField(m, 2, e.Message)
	m = appendVarintField(m, 3, uint64(e.RetryAfter.Milliseconds()))
	for _, f := range e.Fields {
		m = appendStringPair(m, 4, f.Pointer, f.Message)
	}
	return appendMessageField(dst, num, m)
}

// appendResult encodes a PreviewResponse or an ExecuteResponse, which
// number their fields alike: the JSON out 1, the error 2.
func appendResult(dst, out []byte, e *Error) []byte {
	return appendErrorField(appendBytesField(dst, 1, out), 2, e)
}

// appendHTTPRequest encodes an HttpRequest.
func appendHTTPRequest(dst []byte, r *httpRequest) []byte {
	dst = appendStringField(dst, 1, r.method)
	dst = appendStringField(dst, 2, r.url)
	for _, h := range r.headers {
		dst = appendStringPair(dst, 3, h.name, h.value)
	}
	dst = appendBytesField(dst, 4, r.body)
	return appendVarintField(dst, 5, uint64(r.timeoutMS))
}
