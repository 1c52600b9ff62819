package connector

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

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

// eachField calls fn with each field of the message in b: its number and
// wire type, and its value, the varint v for VarintType or the bytes b for
// BytesType. Other wire types are checked and skipped, as fn skips the
// fields it does not know.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("field number %d is over the largest, %d", num, protowire.MaxValidNumber)
		}
		b = b[n:]
		var v uint64
		var val []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.VarintType && typ != protowire.BytesType {
			continue
		}
		if err := fn(num, typ, v, val); err != nil {
			return err
		}
	}
	return nil
}

func wireString(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errNotUTF8
	}
	return string(b), nil
}

// wireBytes copies a bytes field: b points into the request's block,
// which is cleared once decoded.
func wireBytes(b []byte) []byte { return append([]byte{}, b...) }

// decodeEmpty checks a message with no fields, such as a DescribeRequest.
func decodeEmpty(b []byte) error {
	return eachField(b, func(protowire.Number, protowire.Type, uint64, []byte) error { return nil })
}

// decodeActionRequest decodes an ActionRequest.
func decodeActionRequest(b []byte) (*actionRequest, error) {
	req := &actionRequest{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) (err error) {
		switch {
		case num == 7 && typ == protowire.VarintType:
			req.inputValidated = protowire.DecodeBool(v)
		case typ != protowire.BytesType:
		case num == 1:
			req.action, err = wireString(b)
		case num == 2:
			req.input = wireBytes(b)
		case num == 3:
			err = decodeConnection(b, &req.conn)
		case num == 4:
			req.runID, err = wireString(b)
		case num == 5:
			req.idempotencyKey, err = wireString(b)
		case num == 6:
			req.workspaceID, err = wireString(b)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

// decodeCheckConfigRequest decodes a CheckConfigRequest: its connection.
func decodeCheckConfigRequest(b []byte) (Connection, error) {
	var c Connection
	err := eachField(b, func(num protowire.Number, typ protowire.Type, _ uint64, b []byte) error {
		if num == 1 && typ == protowire.BytesType {
			return decodeConnection(b, &c)
		}
		return nil
	})
	return c, err
}

// decodeConnection merges a Connection into c.
func decodeConnection(b []byte, c *Connection) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, _ uint64, b []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			c.Config = wireBytes(b)
		case 2:
			key, value, err := decodeStringPair(b)
			if err != nil {
				return err
			}
			if c.Secrets == nil {
				c.Secrets = map[string]string{}
			}
			c.Secrets[key] = value
		}
		return nil
	})
}

// decodeStringPair decodes a message of two strings, fields 1 and 2: an
// entry of a map<string, string>, a Header, a FieldError.
func decodeStringPair(b []byte) (first, second string, err error) {
	err = eachField(b, func(num protowire.Number, typ protowire.Type, _ uint64, b []byte) (err error) {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			first, err = wireString(b)
		case 2:
			second, err = wireString(b)
		}
		return err
	})
	return first, second, err
}

// decodeError merges an Error into e.
func decodeError(b []byte, e *Error) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) (err error) {
		switch {
		case num == 1 && typ == protowire.VarintType:
			e.Code = Code(int32(v))
		case num == 3 && typ == protowire.VarintType:
			e.RetryAfter = time.Duration(int64(v)) * time.Millisecond
		case typ != protowire.BytesType:
		case num == 2:
			e.Message, err = wireString(b)
		case num == 4:
			var f FieldError
			f.Pointer, f.Message, err = decodeStringPair(b)
			e.Fields = append(e.Fields, f)
		}
		return err
	})
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
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) (err error) {
		switch {
		case num == 1 && typ == protowire.VarintType:
			r.status = int32(v)
		case num == 4 && typ == protowire.VarintType:
			r.bodyTruncated = protowire.DecodeBool(v)
		case typ != protowire.BytesType:
		case num == 2:
			var h header
			h.name, h.value, err = decodeStringPair(b)
			r.headers = append(r.headers, h)
		case num == 3:
			r.body = wireBytes(b)
		case num == 5:
			if r.err == nil {
				r.err = &Error{}
			}
			err = decodeError(b, r.err)
		}
		return err
	})
	if err != nil {
		return nil, err
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
