package connector

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

// maxRedirects is how many redirects HTTPClient follows, as
// egress.Guard.HTTPClient does.
const maxRedirects = 5

// HTTPTransport returns the transport for a connector's outbound HTTP, in
// either form. Natively it dials through guard, which allows the hosts the
// manifest declares and checks every address it dials against the
// operator's policy; it ignores proxy settings and asks for no compression,
// so a request leaves as the connector built it. Built for wasip1, where a
// module opens no sockets, it hands each request to the host (the
// relay.http_request host function), which applies the same policy, and
// guard is not used. Failures keep their class in both forms: a refused
// address is an *egress.DeniedError, a network failure or a host-side
// timeout a CodeRetryable *Error, and a request whose context is done
// fails with the context's error.
func HTTPTransport(guard *egress.Guard) http.RoundTripper {
	return newHTTPTransport(guard)
}

// HTTPClient returns a client on HTTPTransport with the egress policy of
// the call ctx belongs to (see EgressFromContext). It gives up after
// timeout (0: no limit but the context's) and follows at most 5 redirects,
// each through the same policy; set CheckRedirect to follow none.
func HTTPClient(ctx context.Context, timeout time.Duration) *http.Client {
	return newHTTPClient(EgressFromContext(ctx), timeout)
}

// HTTPClient returns a client for this call's outbound HTTP; see the
// package function HTTPClient.
func (r Request[In]) HTTPClient(timeout time.Duration) *http.Client {
	g := r.Egress
	if g == nil {
		g = egress.New(nil, nil) // refuses everything
	}
	return newHTTPClient(g, timeout)
}

func newHTTPClient(g *egress.Guard, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: HTTPTransport(g),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("stopped after 5 redirects")
			}
			return nil
		},
	}
}
