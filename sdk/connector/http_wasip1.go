//go:build wasip1

package connector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol"
)

func newHTTPTransport(*egress.Guard) http.RoundTripper { return hostTransport{} }

// hostTransport makes HTTP requests through the host function
// relay.http_request. The host enforces the egress policy, follows
// redirects only to the same scheme, host and port (a redirect elsewhere
// comes back as the 3xx, for the http.Client to follow or not through this
// transport again), and caps the time and the response body.
type hostTransport struct{}

// errBodyTruncated ends the body of a response the host cut at its cap.
var errBodyTruncated = errors.New("the response body is longer than the host passes on; it was cut there")

func (hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, protocol.MaxMessageSize+1))
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		if len(body) > protocol.MaxMessageSize {
			return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the request body is over the %d-byte message limit", protocol.MaxMessageSize)}
		}
	}
	ctx := req.Context()
	hreq := &httpRequest{method: req.Method, url: req.URL.String(), body: body}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		hreq.timeoutMS = max(left.Milliseconds(), 1)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for name, values := range req.Header {
		for _, v := range values {
			hreq.headers = append(hreq.headers, header{name, v})
		}
	}
	raw, err := hostCall(appendHTTPRequest(nil, hreq))
	if err != nil {
		return nil, err
	}
	resp, err := decodeHTTPResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("relay.http_request: the answer does not decode: %w", err)
	}
	if e := resp.err; e != nil {
		// The host gave up at the deadline that became timeout_ms. The
		// context's timer has not fired yet: the module ran nothing while
		// the host worked.
		if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%s: %w", e.Message, context.DeadlineExceeded)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, hostHTTPError(req, e)
	}
	hdr := http.Header{}
	for _, h := range resp.headers {
		hdr.Add(h.name, h.value)
	}
	code := int(resp.status)
	out := &http.Response{
		Status: strconv.Itoa(code) + " " + http.StatusText(code), StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, ContentLength: int64(len(resp.body)),
		Body:    io.NopCloser(bytes.NewReader(resp.body)),
		Request: req,
	}
	if resp.bodyTruncated {
		out.ContentLength = -1
		out.Body = io.NopCloser(io.MultiReader(bytes.NewReader(resp.body), errReader{errBodyTruncated}))
	}
	return out, nil
}

// hostCall passes an encoded HttpRequest to relay.http_request and reads
// back the encoded HttpResponse.
func hostCall(req []byte) ([]byte, error) {
	n := hostHTTPRequest(unsafe.SliceData(req), uint32(len(req)))
	if n < 0 {
		return nil, errors.New("relay.http_request refused the request's memory")
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]byte, n)
	if got := hostResultRead(&out[0], uint32(n)); got != n {
		return nil, fmt.Errorf("relay.result_read returned %d of the %d bytes pending", got, n)
	}
	return out, nil
}

// hostHTTPError turns the host's classified failure into the error net/http
// callers and the SDK's own classification expect.
func hostHTTPError(req *http.Request, e *Error) error {
	if e.Code == CodeEgressDenied {
		return deniedError(req.URL.Hostname(), e.Message)
	}
	out := &Error{Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter}
	if out.Code == 0 {
		out.Code = CodeInternal
	}
	return out
}

// deniedError rebuilds the host's refusal as the *egress.DeniedError a
// native connector gets. The host's message is that error's own text,
// "egress to <host> [(<addr>)] refused: <reason>", which is taken apart so
// that the text does not say it twice.
func deniedError(host, msg string) *egress.DeniedError {
	e := &egress.DeniedError{Host: host, Reason: msg}
	head, reason, ok := strings.Cut(msg, " refused: ")
	head, found := strings.CutPrefix(head, "egress to ")
	if !ok || !found {
		return e
	}
	e.Reason = reason
	if name, addr, ok := strings.Cut(head, " ("); ok {
		if a, err := netip.ParseAddr(strings.TrimSuffix(addr, ")")); err == nil {
			e.Host, e.Addr = name, a
		}
	} else {
		e.Host = head
	}
	return e
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
