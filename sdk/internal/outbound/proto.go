package outbound

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Serve makes the request a connector asked its host for (a WASM module's
// relay.http_request, a sandboxed native connector's Host.Fetch) with c, a
// client of NewClient(g), within ctx, and returns the answer it gets: the
// response with at most limit bytes of its body, or an error whose code
// keeps the failure's class. The request's own timeout_ms shortens def,
// the default; ctx bounds both. One function for both hosts is what makes
// a connector's request fail the same way in either form.
func Serve(ctx context.Context, c *http.Client, g *egress.Guard, hr *connectorv1.HttpRequest, def time.Duration, limit int) *connectorv1.HttpResponse {
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
	timeout := def
	if t := hr.GetTimeoutMs(); t > 0 && t < int64(time.Duration(1<<62)/time.Millisecond) {
		timeout = time.Duration(t) * time.Millisecond // the call's deadline bounds it still
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, f := Exchange(rctx, c, g, method, hr.GetUrl(), headers, hr.GetBody(), limit)
	if f != nil {
		return &connectorv1.HttpResponse{Error: &connectorv1.Error{Code: f.Code(), Message: f.Message}}
	}
	out := &connectorv1.HttpResponse{Status: int32(resp.Status), Body: resp.Body, BodyTruncated: resp.Truncated}
	for name, values := range resp.Header {
		for _, v := range values {
			out.Headers = append(out.Headers, &connectorv1.Header{Name: name, Value: v})
		}
	}
	return out
}

// Code is the protocol's error code for the failure's class.
func (f *Failure) Code() connectorv1.ErrorCode {
	switch f.Class {
	case Invalid:
		return connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT
	case Denied:
		return connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED
	case Permanent:
		return connectorv1.ErrorCode_ERROR_CODE_PERMANENT
	default:
		return connectorv1.ErrorCode_ERROR_CODE_RETRYABLE
	}
}

// ErrorResponse is an answer that carries only an error.
func ErrorResponse(code connectorv1.ErrorCode, format string, args ...any) *connectorv1.HttpResponse {
	return &connectorv1.HttpResponse{Error: &connectorv1.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}
