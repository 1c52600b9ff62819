package nethttp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connector/nethttp"
	"github.com/relayhq/relay/sdk/egress"
)

// The native transport dials through the guard: an address the operator
// allowed is reached, with the request as built (no Accept-Encoding added);
// one the guard refuses fails with an *egress.DeniedError.
func TestClientDialsThroughTheGuard(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	allowed := egress.New([]string{"*"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	resp, err := nethttp.Client(allowed, 5*time.Second).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status %d", resp.StatusCode)
	}
	if h := <-got; h.Get("Accept-Encoding") != "" {
		t.Errorf("the transport added Accept-Encoding: %q", h.Get("Accept-Encoding"))
	}

	_, err = nethttp.Client(egress.New([]string{"*"}, nil), 5*time.Second).Get(srv.URL)
	var denied *egress.DeniedError
	if !errors.As(err, &denied) {
		t.Errorf("loopback without the operator's allowance: got %v, want an *egress.DeniedError", err)
	}

	// Without a guard, everything is refused.
	_, err = nethttp.Client(nil, time.Second).Get(srv.URL)
	if !errors.As(err, &denied) {
		t.Errorf("a client without a guard: got %v, want an *egress.DeniedError", err)
	}
}
