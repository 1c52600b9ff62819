package connector_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
)

// loopback is a request whose egress policy allows the loopback servers
// of these tests.
func loopback() connector.Request[struct{}] {
	return connector.Request[struct{}]{Egress: egress.New([]string{"*"}, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"),
	})}
}

// Natively, Fetch dials through the guard: an address the operator allowed
// is reached with the request as built (its headers, no Accept-Encoding
// added, one Content-Length); one the guard refuses, or a host the manifest does not declare,
// fails with an *egress.DeniedError before anything is dialled.
func TestFetchDialsThroughTheGuard(t *testing.T) {
	type seen struct {
		method, body string
		header       http.Header
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, string(b), r.Header.Clone()}
		w.Header().Set("X-Answer", "42")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("made"))
	}))
	defer srv.Close()

	h := connector.Header{}
	h.Set("content-type", "application/json")
	h["webhook-id"] = []string{"msg_1"}
	// net/http writes its own Content-Length: the connector's must not go
	// out beside it, whatever its spelling.
	h["content-length"] = []string{"999"}
	resp, err := loopback().Fetch(context.Background(), &connector.HTTPRequest{Method: "POST", URL: srv.URL + "/x", Header: h, Body: []byte(`{}`), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || string(resp.Body) != "made" || resp.Header.Get("x-answer") != "42" || resp.Truncated || resp.URL != srv.URL+"/x" {
		t.Errorf("response %+v", resp)
	}
	var s seen
	select {
	case s = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler saw no request")
	}
	if s.method != "POST" || s.body != "{}" || s.header.Get("Content-Type") != "application/json" || s.header.Get("Webhook-Id") != "msg_1" {
		t.Errorf("the server saw %+v", s)
	}
	if s.header.Get("Accept-Encoding") != "" {
		t.Errorf("Fetch added Accept-Encoding: %q", s.header.Get("Accept-Encoding"))
	}

	var denied *egress.DeniedError
	refused := connector.Request[struct{}]{Egress: egress.New([]string{"*"}, nil)}
	if _, err := refused.Fetch(context.Background(), &connector.HTTPRequest{URL: srv.URL}); !errors.As(err, &denied) {
		t.Errorf("loopback without the operator's allowance: got %v, want an *egress.DeniedError", err)
	}
	undeclared := connector.Request[struct{}]{Egress: egress.New([]string{"api.example.com"}, nil)}
	if _, err := undeclared.Fetch(context.Background(), &connector.HTTPRequest{URL: "http://other.example.com/"}); !errors.As(err, &denied) || denied.Host != "other.example.com" {
		t.Errorf("a host the manifest does not declare: got %v, want an *egress.DeniedError", err)
	}
	// Outside a call, the context carries no policy: everything is refused.
	if _, err := connector.Fetch(context.Background(), &connector.HTTPRequest{URL: srv.URL}); !errors.As(err, &denied) {
		t.Errorf("Fetch with a context outside a call: got %v, want an *egress.DeniedError", err)
	}
	select {
	case s := <-got:
		t.Errorf("a refused request reached the server: %+v", s)
	default:
	}
}

// Natively, Fetch reuses its connections from one call to the next, as
// the WASM host does.
func TestFetchReusesConnections(t *testing.T) {
	var opened atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	r := loopback()
	for range 3 {
		resp, err := r.Fetch(context.Background(), &connector.HTTPRequest{URL: srv.URL})
		if err != nil || string(resp.Body) != "ok" {
			t.Fatalf("%v %v", resp, err)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("three requests opened %d connections; want 1", n)
	}
}

// Redirects are followed only as far as MaxRedirects allows, each through
// the policy: a 302 to a POST becomes a GET without the body, a 307 repeats
// the POST and its body, and credentials do not follow to another host.
func TestFetchRedirects(t *testing.T) {
	type seen struct {
		method, body, auth string
	}
	got := make(chan seen, 10)
	record := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, string(b), r.Header.Get("Authorization")}
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Write([]byte("other"))
	}))
	defer other.Close()
	// The same server, named "localhost" instead of 127.0.0.1: another host.
	otherByName := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		switch r.URL.Path {
		case "/found":
			http.Redirect(w, r, "/end", http.StatusFound)
		case "/temporary":
			http.Redirect(w, r, "/end", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, r, otherByName+"/", http.StatusFound)
		case "/nowhere":
			w.WriteHeader(http.StatusFound) // no Location
		default:
			w.Write([]byte("end"))
		}
	}))
	defer srv.Close()
	r := loopback()
	fetch := func(method, path string, redirects int) (*connector.HTTPResponse, []seen) {
		t.Helper()
		resp, err := r.Fetch(context.Background(), &connector.HTTPRequest{
			Method: method, URL: srv.URL + path, Body: []byte("payload"), MaxRedirects: redirects,
			Header: connector.Header{"Authorization": {"Bearer s3cr3t"}, "Content-Type": {"text/plain"}},
		})
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var hops []seen
		for len(got) > 0 {
			hops = append(hops, <-got)
		}
		return resp, hops
	}

	if resp, hops := fetch("POST", "/found", 0); resp.StatusCode != http.StatusFound || len(hops) != 1 {
		t.Errorf("MaxRedirects 0: status %d after %d requests; want the 302 itself", resp.StatusCode, len(hops))
	}
	if resp, hops := fetch("POST", "/found", 1); resp.StatusCode != 200 || string(resp.Body) != "end" || resp.URL != srv.URL+"/end" ||
		len(hops) != 2 || hops[1] != (seen{"GET", "", "Bearer s3cr3t"}) {
		t.Errorf("a 302 to a POST: %d %q from %s, hops %+v; want a GET without the body, credentials kept on the same host", resp.StatusCode, resp.Body, resp.URL, hops)
	}
	if resp, hops := fetch("POST", "/temporary", 1); resp.StatusCode != 200 || len(hops) != 2 || hops[1] != (seen{"POST", "payload", "Bearer s3cr3t"}) {
		t.Errorf("a 307 to a POST: %d, hops %+v; want the POST repeated with its body", resp.StatusCode, hops)
	}
	if resp, hops := fetch("GET", "/loop", 3); resp.StatusCode != http.StatusFound || len(hops) != 4 {
		t.Errorf("a redirect loop with MaxRedirects 3: status %d after %d requests; want the 4th answer, a 302", resp.StatusCode, len(hops))
	}
	if resp, hops := fetch("GET", "/elsewhere", 1); resp.StatusCode != 200 || string(resp.Body) != "other" || len(hops) != 2 || hops[1].auth != "" {
		t.Errorf("a redirect to another host: %d %q, hops %+v; want it followed without the Authorization header", resp.StatusCode, resp.Body, hops)
	}
	if resp, hops := fetch("GET", "/nowhere", 5); resp.StatusCode != http.StatusFound || len(hops) != 1 {
		t.Errorf("a 302 without Location: status %d after %d requests", resp.StatusCode, len(hops))
	}

	// A redirect to an address the guard refuses is refused.
	meta := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data", http.StatusFound))
	defer meta.Close()
	var denied *egress.DeniedError
	if _, err := r.Fetch(context.Background(), &connector.HTTPRequest{URL: meta.URL, MaxRedirects: 1}); !errors.As(err, &denied) {
		t.Errorf("a redirect to the metadata address: got %v, want an *egress.DeniedError", err)
	}
}

// A body over MaxResponseBody comes back cut, and says so.
func TestFetchCapsTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100)))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		limit, want int
		truncated   bool
	}{{10, 10, true}, {100, 100, false}, {0, 100, false}} {
		resp, err := loopback().Fetch(context.Background(), &connector.HTTPRequest{URL: srv.URL, MaxResponseBody: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Body) != tc.want || resp.Truncated != tc.truncated {
			t.Errorf("MaxResponseBody %d: %d bytes, truncated %v; want %d, %v", tc.limit, len(resp.Body), resp.Truncated, tc.want, tc.truncated)
		}
	}
}

// Failures carry the class the WASM host gives a module's: a bad request
// is INVALID_INPUT, a closed port or no answer within the Timeout
// RETRYABLE, a certificate that does not verify PERMANENT, and a request
// whose caller gave up fails with its context's error.
func TestFetchFailures(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake Fetch refuses
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	r := loopback()
	code := func(err error) connector.Code {
		var e *connector.Error
		if !errors.As(err, &e) {
			return -1
		}
		return e.Code
	}

	for _, tc := range []struct {
		name string
		req  connector.HTTPRequest
		want connector.Code
		text string
	}{
		{"not http", connector.HTTPRequest{URL: "ftp://127.0.0.1/"}, connector.CodeInvalidInput, "not an absolute http"},
		{"user info", connector.HTTPRequest{URL: "http://u:p@127.0.0.1/"}, connector.CodeInvalidInput, "user info"},
		{"bad header", connector.HTTPRequest{URL: slow.URL, Header: connector.Header{"X": {"a\nb"}}}, connector.CodeInvalidInput, "bad header"},
		{"Host header", connector.HTTPRequest{URL: slow.URL, Header: connector.Header{"Host": {"evil"}}}, connector.CodeInvalidInput, "Host header"},
		{"bad method", connector.HTTPRequest{Method: "GET /", URL: slow.URL}, connector.CodeInvalidInput, "bad method"},
		{"closed port", connector.HTTPRequest{URL: "http://127.0.0.1:1/"}, connector.CodeRetryable, "request to 127.0.0.1"},
		{"no answer in time", connector.HTTPRequest{URL: slow.URL, Timeout: 100 * time.Millisecond}, connector.CodeRetryable, "no answer in time"},
		{"certificate", connector.HTTPRequest{URL: tlsSrv.URL}, connector.CodePermanent, "certificate"},
	} {
		_, err := r.Fetch(context.Background(), &tc.req)
		if code(err) != tc.want || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %v; want code %v saying %q", tc.name, err, tc.want, tc.text)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Fetch(ctx, &connector.HTTPRequest{URL: slow.URL}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the caller's deadline: got %v, want context.DeadlineExceeded", err)
	}
}

func TestHeader(t *testing.T) {
	h := connector.Header{}
	h.Set("x-one", "1")
	h.Add("X-ONE", "2")
	if got := h.Values("X-One"); len(got) != 2 || got[0] != "1" || got[1] != "2" || h.Get("x-one") != "1" {
		t.Errorf("values %v", got)
	}
	c := h.Clone()
	c.Add("x-one", "3")
	h.Del("x-ONE")
	if h.Get("X-One") != "" || len(c.Values("x-one")) != 3 {
		t.Errorf("after Del and a clone's Add: %v %v", h, c)
	}
	if connector.Header(nil).Clone() != nil || connector.Header(nil).Get("X") != "" {
		t.Error("a nil Header")
	}
}
