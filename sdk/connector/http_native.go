//go:build !wasip1

package connector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/internal/outbound"
)

// exchange makes one request and reads its answer, following no redirect,
// on g's client (clientFor): the connection dials through g, as the WASM
// host sends a module's request.
func exchange(ctx context.Context, g *egress.Guard, req *HTTPRequest, limit int) (*HTTPResponse, error) {
	u, problem := outbound.Check(req.Method, req.URL, req.Header.fields())
	if problem != "" {
		return nil, &Error{Code: CodeInvalidInput, Message: problem}
	}
	host := u.Hostname()
	if err := g.CheckHost(host); err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Message: "bad request to " + host + ": " + err.Error()}
	}
	if len(req.Body) == 0 {
		hreq.Body, hreq.GetBody, hreq.ContentLength = http.NoBody, nil, 0
	}
	for name, values := range req.Header {
		name = outbound.WireName(name)
		hreq.Header[name] = append(hreq.Header[name], values...)
	}
	resp, err := clientFor(g).Do(hreq)
	if err != nil {
		return nil, failure(ctx, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, failure(ctx, host, err)
	}
	out := &HTTPResponse{StatusCode: resp.StatusCode, Header: Header(resp.Header), Body: body}
	if len(body) > limit {
		out.Body, out.Truncated = body[:limit], true
	}
	return out, nil
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

// clientFor returns g's client, on outbound.NewTransport(g). It follows no
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
	c := &http.Client{
		Transport:     outbound.NewTransport(g),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	clients.byGuard[g] = c
	clients.order = append(clients.order, g)
	return c
}

// failure is the error of a request that got no answer, classified as the
// WASM host classifies a module's.
func failure(ctx context.Context, host string, err error) error {
	class, msg := outbound.Classify(ctx, host, err)
	switch class {
	case outbound.Denied:
		return unwrapDenied(err)
	case outbound.Permanent:
		return &Error{Code: CodePermanent, Message: msg}
	default:
		return &Error{Code: CodeRetryable, Message: msg}
	}
}

// unwrapDenied returns the *egress.DeniedError in err's chain.
func unwrapDenied(err error) error {
	var denied *egress.DeniedError
	if errors.As(err, &denied) {
		return denied
	}
	return err
}
