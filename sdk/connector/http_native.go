//go:build !wasip1

package connector

import (
	"context"
	"net/http"
	"sync"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/internal/outbound"
)

// exchange makes one request on g's client (clientFor) by the rules the
// WASM host applies to a module's (outbound.Exchange); in a process the
// host has lent its network (host_native.go), the host makes it instead.
func exchange(ctx context.Context, g *egress.Guard, req *HTTPRequest, limit int) (*HTTPResponse, error) {
	if h := host.Load(); h != nil {
		return h.exchange(ctx, g, req, limit)
	}
	resp, f := outbound.Exchange(ctx, clientFor(g), g, req.Method, req.URL, req.Header.fields(), req.Body, limit)
	if f != nil {
		switch {
		case f.Denied != nil:
			return nil, f.Denied
		case f.Class == outbound.Denied:
			return nil, &Error{Code: CodeEgressDenied, Message: f.Message}
		case f.Class == outbound.Invalid:
			return nil, &Error{Code: CodeInvalidInput, Message: f.Message}
		case f.Class == outbound.Permanent:
			return nil, &Error{Code: CodePermanent, Message: f.Message}
		default:
			return nil, &Error{Code: CodeRetryable, Message: f.Message}
		}
	}
	return &HTTPResponse{StatusCode: resp.Status, Header: Header(resp.Header), Body: resp.Body, Truncated: resp.Truncated}, nil
}

// maxClients is how many egress guards' clients clientFor keeps.
const maxClients = 16

// clients holds a client per egress guard, so that a connector's requests
// reuse connections, and TLS sessions, from one call to the next, as the
// WASM host's do for a module. A plugin process has one guard, its
// Server's; guards made elsewhere (tests, a connector's own) are kept up
// to maxClients, the oldest dropped first, its idle connections closed.
var clients struct {
	sync.Mutex
	byGuard map[*egress.Guard]*http.Client
	order   []*egress.Guard
}

// clientFor returns g's client (outbound.NewClient). It follows no
// redirect: fetch does, each through the checks of a request of its own.
func clientFor(g *egress.Guard) *http.Client {
	clients.Lock()
	defer clients.Unlock()
	if c := clients.byGuard[g]; c != nil {
		return c
	}
	if clients.byGuard == nil {
		clients.byGuard = map[*egress.Guard]*http.Client{}
	}
	if len(clients.order) == maxClients {
		old := clients.order[0]
		clients.order = clients.order[1:]
		clients.byGuard[old].CloseIdleConnections()
		delete(clients.byGuard, old)
	}
	c := outbound.NewClient(g)
	clients.byGuard[g] = c
	clients.order = append(clients.order, g)
	return c
}
