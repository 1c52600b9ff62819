package connector_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
)

// The native transport dials through the guard: an address the operator
// allowed is reached, with the request as built (no Accept-Encoding added);
// one the guard refuses fails with an *egress.DeniedError.
func TestHTTPClientDialsThroughTheGuard(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	allowed := connector.Request[struct{}]{Egress: egress.New([]string{"*"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})}
	resp, err := allowed.HTTPClient(5 * time.Second).Get(srv.URL)
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

	refused := connector.Request[struct{}]{Egress: egress.New([]string{"*"}, nil)}
	_, err = refused.HTTPClient(5 * time.Second).Get(srv.URL)
	var denied *egress.DeniedError
	if !errors.As(err, &denied) {
		t.Errorf("loopback without the operator's allowance: got %v, want an *egress.DeniedError", err)
	}

	// Outside a call, the context carries no policy: everything is refused.
	_, err = connector.HTTPClient(context.Background(), time.Second).Get(srv.URL)
	if !errors.As(err, &denied) {
		t.Errorf("a client from a context without a call: got %v, want an *egress.DeniedError", err)
	}
}
