// Package nethttp gives a connector net/http's *http.Client on the Relay
// egress policy, for code that needs one, such as an API client from
// another library. It works in both forms, as connector.Fetch does:
// natively the client dials through the guard (in Relay's sandbox, the
// guard has the host open the connection); in a WASM module every request
// goes to the host, which applies the same policy. Prefer
// connector.Fetch where it will do: a module that imports net/http links
// its client, crypto/tls and the certificate code, about 1.5 MB that the
// host validates and loads on every start.
package nethttp

import (
	"errors"
	"net/http"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

// maxRedirects is how many redirects Client follows.
const maxRedirects = 5

// Transport returns the transport for a connector's outbound HTTP.
// Natively it dials through g (nil refuses everything), ignores proxy
// settings and asks for no compression. In a WASM module it hands each
// request to the host, and g is not used. Failures keep their class in
// both forms: a refused host or address is an *egress.DeniedError
// somewhere in the error's chain.
func Transport(g *egress.Guard) http.RoundTripper {
	if g == nil {
		g = egress.New(nil, nil)
	}
	return newTransport(g)
}

// Client returns a client on Transport(g). It gives up after timeout (0:
// no limit but the request's context) and follows at most 5 redirects,
// each through the same policy; set CheckRedirect to follow none.
func Client(g *egress.Guard, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: Transport(g),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("stopped after 5 redirects")
			}
			return nil
		},
	}
}
