//go:build !wasip1

package connector

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/relayhq/relay/sdk/egress"
)

// The host's traceparent goes out with every request Fetch makes for the
// call, redirects included, unless the request carries its own.
func TestFetchSendsTheTraceParent(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const own = "00-11111111111111111111111111111111-2222222222222222-01"
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Traceparent"))
		http.Redirect(w, r, "/here", http.StatusFound)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Traceparent"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	g := egress.New([]string{"*"}, loopback)
	ctx := context.WithValue(context.Background(), egressKey{}, g)

	req := &HTTPRequest{URL: srv.URL + "/moved", MaxRedirects: 1}
	if _, err := (Request[struct{}]{Egress: g, TraceParent: tp}).Fetch(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.WithValue(ctx, traceParentKey{}, tp), &HTTPRequest{URL: srv.URL + "/here", Header: Header{"Traceparent": {own}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(ctx, &HTTPRequest{URL: srv.URL + "/here"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{tp, tp, own, ""}; !slices.Equal(got, want) {
		t.Errorf("traceparents sent: %q, want %q", got, want)
	}
	if req.Header != nil {
		t.Error("Fetch changed the caller's request")
	}
}
