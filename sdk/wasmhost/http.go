package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// newHTTPClient returns the client of a module's relay.http_request: every
// connection, redirects included, dials through the guard (which checks
// the host against the manifest's egress and the address it dials against
// the special ranges); no proxy from the environment; no redirect
// followed; no compression asked for on the guest's behalf.
func newHTTPClient(guard *egress.Guard) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            guard.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    10 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConnsPerHost:    8,
			IdleConnTimeout:        60 * time.Second,
			// The guest's request goes out as it asked: no Accept-Encoding
			// added, as a native connector's own client adds none.
			DisableCompression: true,
		},
		// A redirect is the guest's to follow or not, as a native
		// connector's own client decides: it comes back as the 3xx, and a
		// hop the guest makes is a request of its own, checked as any.
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
	u, err := url.Parse(hr.GetUrl())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "the URL is not an absolute http or https URL")
	}
	if u.User != nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "the URL carries user info; send credentials in a header")
	}
	host := u.Hostname()
	if m.guard == nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, "egress to %s refused: this host allows the connector no network access", host)
	}
	if err := m.guard.CheckHost(host); err != nil {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, "%v", err)
	}
	method := hr.GetMethod()
	if method == "" {
		method = http.MethodGet
	}
	if !httpguts.ValidHostHeader(u.Host) || !validMethod(method) {
		return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "bad method %q or host", method)
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
	for _, h := range hr.GetHeaders() {
		if !httpguts.ValidHeaderFieldName(h.GetName()) || !httpguts.ValidHeaderFieldValue(h.GetValue()) {
			return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "bad header %q", h.GetName())
		}
		if strings.EqualFold(h.GetName(), "Host") {
			return httpError(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "the Host header is set from the URL")
		}
		req.Header.Add(h.GetName(), h.GetValue())
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

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if !httpguts.IsTokenRune(r) {
			return false
		}
	}
	return true
}

// transportError classifies a failure to get a response: refused by the
// egress guard, or a network failure or timeout (retryable). The
// *url.Error is unwrapped: its message repeats the whole URL.
func transportError(ctx context.Context, host string, err error) *connectorv1.HttpResponse {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var denied *egress.DeniedError
	var netErr net.Error
	switch {
	case errors.As(err, &denied):
		return httpError(connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, "%v", denied)
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return httpError(connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, "request to %s: no answer in time", host)
	default:
		return httpError(connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, "request to %s: %v", host, err)
	}
}
