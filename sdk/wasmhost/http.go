package wasmhost

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/internal/outbound"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

func httpError(code connectorv1.ErrorCode, format string, args ...any) *connectorv1.HttpResponse {
	return &connectorv1.HttpResponse{Error: &connectorv1.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// doHTTP makes the request encoded in raw within ctx (the call's) and
// returns the answer the guest gets: the response, or an error. Messages
// name the host, never the whole URL, which may carry a token.
func (m *Module) doHTTP(ctx context.Context, raw []byte, maxMessage int) *connectorv1.HttpResponse {
	if len(raw) > maxMessage {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT,
			"the request is %d bytes, over the %s message limit", len(raw), formatSize(maxMessage))
	}
	var hr connectorv1.HttpRequest
	if err := proto.Unmarshal(raw, &hr); err != nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "the request does not decode as relay.connector.v1.HttpRequest: %v", err)
	}
	method := hr.GetMethod()
	if method == "" {
		method = http.MethodGet
	}
	headers := func(yield func(string, string) bool) {
		for _, h := range hr.GetHeaders() {
			if !yield(h.GetName(), h.GetValue()) {
				return
			}
		}
	}
	timeout := m.e.o.HTTPTimeout
	if t := hr.GetTimeoutMs(); t > 0 && t < int64(time.Duration(1<<62)/time.Millisecond) {
		timeout = time.Duration(t) * time.Millisecond // the call's deadline bounds it still
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, f := outbound.Exchange(rctx, m.http, m.guard, method, hr.GetUrl(), headers, hr.GetBody(), m.e.o.MaxHTTPResponse)
	if f != nil {
		code := connectorv1.ErrorCode_ERROR_CODE_RETRYABLE
		switch f.Class {
		case outbound.Invalid:
			code = connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT
		case outbound.Denied:
			code = connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED
		case outbound.Permanent:
			code = connectorv1.ErrorCode_ERROR_CODE_PERMANENT
		}
		return httpError(code, "%s", f.Message)
	}
	out := &connectorv1.HttpResponse{Status: int32(resp.Status), Body: resp.Body, BodyTruncated: resp.Truncated}
	for name, values := range resp.Header {
		for _, v := range values {
			out.Headers = append(out.Headers, &connectorv1.Header{Name: name, Value: v})
		}
	}
	return out
}
