//go:build !wasip1

package connector

import (
	"net/http"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

func newHTTPTransport(guard *egress.Guard) http.RoundTripper {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            guard.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		IdleConnTimeout:        60 * time.Second,
		DisableCompression:     true,
	}
}
