//go:build !wasip1

package connector

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/hostnet"
	"github.com/relayhq/relay/sdk/internal/hostdial"
	"github.com/relayhq/relay/sdk/internal/outbound"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// host is the network the host lent this process (Connector.OpenHost), nil
// while the process makes its own requests. A plugin process has one host.
var host atomic.Pointer[hostNetwork]

type hostNetwork struct{ c connectorv1.HostClient }

// useHost sends the process's requests and connections through c: a host
// that starts a connector without a network of its own lends it its own.
func useHost(c connectorv1.HostClient) {
	host.Store(&hostNetwork{c})
	hostdial.Set(func(ctx context.Context, network, address string) (net.Conn, error) {
		return hostnet.Dial(ctx, c, network, address)
	})
}

// maxHostRequestBody is the largest body a request to the host carries,
// leaving room in the message for the rest of the request.
const maxHostRequestBody = protocol.MaxMessageSize - 64<<10

// exchange hands one request to the host's Fetch, which applies the egress
// policy, follows no redirect and caps the time and the response body, as
// a WASM host does for a module. g's checks of the host name are made here
// first, so that a guard narrower than the manifest's still holds.
func (h *hostNetwork) exchange(ctx context.Context, g *egress.Guard, req *HTTPRequest, limit int) (*HTTPResponse, error) {
	u, problem := outbound.Check(req.Method, req.URL, req.Header.fields())
	if problem != "" {
		return nil, &Error{Code: CodeInvalidInput, Message: problem}
	}
	if g == nil {
		g = egress.New(nil, nil)
	}
	if err := g.CheckHost(u.Hostname()); err != nil {
		return nil, err
	}
	if len(req.Body) > maxHostRequestBody {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the request body is %d bytes, over the %d bytes the host takes", len(req.Body), maxHostRequestBody)}
	}
	hr := &connectorv1.HttpRequest{Method: req.Method, Url: req.URL, Body: req.Body}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		hr.TimeoutMs = max(left.Milliseconds(), 1)
	}
	for name, value := range req.Header.fields() {
		hr.Headers = append(hr.Headers, &connectorv1.Header{Name: name, Value: value})
	}
	resp, err := h.c.Fetch(ctx, hr)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, &Error{Code: CodeRetryable, Message: "request to " + u.Hostname() + ": the host's network service failed: " + status.Convert(err).Message()}
	}
	if e := resp.GetError(); e != nil {
		return nil, hostFailure(req.URL, &Error{Code: Code(e.GetCode()), Message: e.GetMessage(), RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond})
	}
	out := &HTTPResponse{StatusCode: int(resp.GetStatus()), Header: make(Header, len(resp.GetHeaders())), Body: resp.GetBody(), Truncated: resp.GetBodyTruncated()}
	for _, h := range resp.GetHeaders() {
		out.Header[h.GetName()] = append(out.Header[h.GetName()], h.GetValue())
	}
	if len(out.Body) > limit {
		out.Body, out.Truncated = out.Body[:limit], true
	}
	return out, nil
}
