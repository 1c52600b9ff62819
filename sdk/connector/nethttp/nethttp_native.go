//go:build !wasip1

package nethttp

import (
	"net/http"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/internal/outbound"
)

func newTransport(g *egress.Guard) http.RoundTripper { return outbound.NewTransport(g) }
