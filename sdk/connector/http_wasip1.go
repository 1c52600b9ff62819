//go:build wasip1

package connector

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol"
)

// exchange hands one request to the host function relay.http_request,
// which enforces the egress policy, follows no redirect and caps the time
// and the response body; g is the host's to apply, not the module's.
func exchange(ctx context.Context, _ *egress.Guard, req *HTTPRequest, limit int) (*HTTPResponse, error) {
	if len(req.Body) > protocol.MaxMessageSize {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the request body is %d bytes, over the %d-byte message limit", len(req.Body), protocol.MaxMessageSize)}
	}
	hreq := &httpRequest{method: req.Method, url: req.URL, body: req.Body}
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
	for name, value := range req.Header.fields() {
		hreq.headers = append(hreq.headers, header{name, value})
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
		return nil, hostFailure(req.URL, e)
	}
	out := &HTTPResponse{StatusCode: int(resp.status), Header: make(Header, len(resp.headers)), Body: resp.body, Truncated: resp.bodyTruncated}
	for _, h := range resp.headers {
		out.Header[h.name] = append(out.Header[h.name], h.value)
	}
	if len(out.Body) > limit {
		out.Body, out.Truncated = out.Body[:limit], true
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
