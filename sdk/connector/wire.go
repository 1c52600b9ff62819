package connector

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// A WASM guest decodes an ActionRequest and encodes its answer on every
// call. Go compiled to WebAssembly runs protobuf's reflective code slowly
// (decoding a request with a connection's secrets took ~11 µs of a ~130 µs
// echo call), so the guest decodes the usual request and encodes a
// successful answer by hand, and leaves everything else to proto: these
// fast paths give up (ok false) on anything out of the ordinary, a field
// they do not know, a field given twice, a wrong wire type, a string that
// is not UTF-8, and the caller then uses proto.Unmarshal or proto.Marshal,
// which decide. So a message decodes to exactly what proto.Unmarshal
// makes of it (FuzzDecodeActionRequest), and a field added to
// ActionRequest stays unhandled here until it is added, which
// TestDecodeActionRequestKnowsEveryField notices.

// decodeActionRequest decodes b, or reports that proto.Unmarshal must.
func decodeActionRequest(b []byte) (req *connectorv1.ActionRequest, ok bool) {
	req = &connectorv1.ActionRequest{}
	var seen uint8
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 7 || seen&(1<<num) != 0 {
			return nil, false
		}
		seen |= 1 << num
		b = b[n:]
		if num == 7 { // input_validated, a bool
			v, n := protowire.ConsumeVarint(b)
			if typ != protowire.VarintType || n < 0 || v > 1 {
				return nil, false
			}
			req.InputValidated = v == 1
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if typ != protowire.BytesType || n < 0 {
			return nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			req.Action, ok = utf8String(v)
		case 2:
			req.InputJson, ok = append([]byte{}, v...), true
		case 3:
			req.Connection, ok = decodeConnection(v)
		case 4:
			req.RunId, ok = utf8String(v)
		case 5:
			req.IdempotencyKey, ok = utf8String(v)
		case 6:
			req.WorkspaceId, ok = utf8String(v)
		}
		if !ok {
			return nil, false
		}
	}
	return req, true
}

func decodeConnection(b []byte) (*connectorv1.Connection, bool) {
	c := &connectorv1.Connection{}
	sawConfig := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) || (num == 1 && sawConfig) {
			return nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if num == 1 {
			sawConfig = true
			c.ConfigJson = append([]byte{}, v...)
			continue
		}
		key, value, ok := decodeSecret(v)
		if !ok {
			return nil, false
		}
		if c.Secrets == nil {
			c.Secrets = map[string]string{}
		}
		c.Secrets[key] = value
	}
	return c, true
}

// decodeSecret decodes one entry of the secrets map.
func decodeSecret(b []byte) (key, value string, ok bool) {
	var seen uint8
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) || seen&(1<<num) != 0 {
			return "", "", false
		}
		seen |= 1 << num
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
		s, ok := utf8String(v)
		if !ok {
			return "", "", false
		}
		if num == 1 {
			key = s
		} else {
			value = s
		}
	}
	return key, value, true
}

func utf8String(b []byte) (string, bool) {
	return string(b), utf8.Valid(b)
}

// appendOutput encodes a PreviewResponse or an ExecuteResponse that
// carries no error: its first field, the JSON out, alone (both messages
// number it 1). Empty out encodes to nothing, as proto.Marshal does.
func appendOutput(dst, out []byte) []byte {
	if len(out) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	return protowire.AppendBytes(dst, out)
}
