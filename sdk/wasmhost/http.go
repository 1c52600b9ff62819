package wasmhost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/internal/outbound"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// newHTTPClient returns the client of a module's relay.http_request, on
// the transport a native connector's Fetch uses (outbound.NewTransport):
// every connection, redirects included, dials through the guard; no proxy
// from the environment; no compression asked for on the guest's behalf.
// No redirect is followed: a redirect is the guest's to follow or not, as
// a native connector's own client decides. It comes back as the 3xx, and a
// hop the guest makes is a request of its own, checked as any.
func newHTTPClient(guard *egress.Guard) *http.Client {
	t := outbound.NewTransport(guard)
	t.MaxIdleConnsPerHost = 8
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

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
	u, problem := outbound.Check(method, hr.GetUrl(), headers)
	if problem != "" {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "%s", problem)
	}
	host := u.Hostname()
	if m.guard == nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, "egress to %s refused: this host allows the connector no network access", host)
	}
	if err := m.guard.CheckHost(host); err != nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, "%v", err)
	}
	timeout := m.e.o.HTTPTimeout
	if t := hr.GetTimeoutMs(); t > 0 && t < int64(time.Duration(1<<62)/time.Millisecond) {
		timeout = time.Duration(t) * time.Millisecond // the call's deadline bounds it still
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u.String(), bytes.NewReader(hr.GetBody()))
	if err != nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "bad request to %s: %v", host, err)
	}
	if len(hr.GetBody()) == 0 {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	for name, value := range headers {
		name = outbound.WireName(name) // as the guest wrote it, but for what net/http sets itself
		req.Header[name] = append(req.Header[name], value)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return transportError(rctx, host, err)
	}
	defer resp.Body.Close()
	limit := m.e.o.MaxHTTPResponse
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return transportError(rctx, host, err)
	}
	out := &connectorv1.HttpResponse{Status: int32(resp.StatusCode)}
	if len(body) > limit {
		body, out.BodyTruncated = body[:limit], true
	}
	out.Body = body
	for name, values := range resp.Header {
		for _, v := range values {
			out.Headers = append(out.Headers, &connectorv1.Header{Name: name, Value: v})
		}
	}
	return out
}

// transportError classifies a failure to get a response by the rules a
// native connector's Fetch follows (outbound.Classify).
func transportError(ctx context.Context, host string, err error) *connectorv1.HttpResponse {
	code := connectorv1.ErrorCode_ERROR_CODE_RETRYABLE
	class, msg := outbound.Classify(ctx, host, err)
	switch class {
	case outbound.Denied:
		code = connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED
	case outbound.Permanent:
		code = connectorv1.ErrorCode_ERROR_CODE_PERMANENT
	}
	return httpError(code, "%s", msg)
}
