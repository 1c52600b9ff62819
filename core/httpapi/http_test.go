package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/schemas"
)

func TestProblemResponses(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	admin := keys[core.RoleAdmin]
	tests := []struct {
		name         string
		method, path string
		key          string
		body         any
		headers      []string
		status       int
		code         string
	}{
		{"unknown route", "GET", "/v1/nothing", admin, nil, nil, 404, core.ENotFound},
		{"unknown key id", "GET", "/v1/keys/" + core.NewID(), admin, nil, nil, 404, core.ENotFound},
		{"malformed key id", "GET", "/v1/keys/..%2f", admin, nil, nil, 404, core.ENotFound},
		{"wrong method", "PUT", "/v1/keys", admin, nil, nil, 405, core.EMethod},
		{"not JSON", "POST", "/v1/keys", admin, "{", nil, 400, core.EInvalid},
		{"JSON array", "POST", "/v1/keys", admin, "[]", nil, 400, core.EInvalid},
		{"empty body", "POST", "/v1/keys", admin, "", nil, 400, core.EInvalid},
		{"two objects", "POST", "/v1/keys", admin, `{"role":"viewer"}{}`, nil, 400, core.EInvalid},
		{"unknown field", "POST", "/v1/keys", admin, map[string]string{"role": "viewer", "scope": "all"}, nil, 400, core.EInvalid},
		{"wrong type", "POST", "/v1/keys", admin, map[string]int{"role": 3}, nil, 400, core.EInvalid},
		{"bad role", "POST", "/v1/keys", admin, map[string]string{"role": "owner"}, nil, 400, core.EInvalid},
		{"missing role", "POST", "/v1/keys", admin, map[string]string{"name": "x"}, nil, 400, core.EInvalid},
		{"name too long", "POST", "/v1/keys", admin, map[string]string{"role": "viewer", "name": strings.Repeat("n", 101)}, nil, 400, core.EInvalid},
		{"text body", "POST", "/v1/keys", admin, `{"role":"viewer"}`, []string{"Content-Type", "text/plain"}, 415, core.EUnsupportedMedia},
		{"form body", "POST", "/v1/keys", admin, `{"role":"viewer"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, core.EUnsupportedMedia},
		{"no Content-Type", "POST", "/v1/keys", admin, `{"role":"viewer"}`, []string{"Content-Type", ""}, 415, core.EUnsupportedMedia},
		{"no Content-Type, no body", "POST", "/v1/keys", admin, nil, nil, 415, core.EUnsupportedMedia},
		{"bad limit", "GET", "/v1/keys?limit=0", admin, nil, nil, 400, core.EInvalid},
		{"huge limit", "GET", "/v1/keys?limit=100000", admin, nil, nil, 400, core.EInvalid},
		{"bad cursor", "GET", "/v1/keys?cursor=%%%", admin, nil, nil, 400, core.EInvalid},
		{"no key", "GET", "/v1/workspace", "", nil, nil, 401, core.EUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.with(t).do(tt.method, tt.path, tt.key, tt.body, tt.headers...)
			if resp.Status != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.Status, tt.status, resp.Body)
			}
			p := resp.problem(t)
			if p.Code != tt.code {
				t.Fatalf("code %q, want %q", p.Code, tt.code)
			}
			if p.Type != "urn:relay:problem:"+tt.code {
				t.Fatalf("type %q", p.Type)
			}
			if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
				t.Fatalf("request id %q in body, %q in header", p.RequestID, resp.Header.Get("X-Request-Id"))
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("security headers missing from an error response")
			}
		})
	}
}

// TestBodyLimit sends only the headers of a 2 MiB body: the server must
// refuse it from Content-Length alone, before reading any of it. (Sending
// the body too would race the server's close against the client's write.)
func TestBodyLimit(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/keys HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", keys[core.RoleAdmin], 2*DefaultBodyLimit)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	body, _ := io.ReadAll(hr.Body)
	resp := &response{Status: hr.StatusCode, Header: hr.Header, Body: body}
	if resp.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", resp.Status, body)
	}
	if p := resp.problem(t); p.Code != core.ETooLarge || p.RequestID == "" {
		t.Fatalf("problem %+v", p)
	}
	if hr.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("security headers missing")
	}
}

func TestInternalErrorsHideDetails(t *testing.T) {
	secret := "password=hunter2 at db.internal"
	ts := newTestServer(t, func(c *Config) {
		c.Store = failingStore{Store: c.Store, err: errors.New(secret)}
	})
	_, keys := ts.workspace("acme")
	resp := ts.do(http.MethodGet, "/v1/keys", keys[core.RoleAdmin], nil)
	if resp.Status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.Status)
	}
	p := resp.problem(t)
	if p.Code != core.EInternal || strings.Contains(string(resp.Body), "hunter2") {
		t.Fatalf("internal error leaked: %s", resp.Body)
	}
	if !strings.Contains(ts.logs.String(), p.RequestID) || !strings.Contains(ts.logs.String(), "hunter2") {
		t.Fatal("the internal error is not in the log with its request id")
	}
}

// failingStore fails ListKeys with err, to reach the internal-error path.
type failingStore struct {
	core.Store
	err error
}

func (s failingStore) ListKeys(context.Context, string, core.Page) ([]*core.APIKey, string, error) {
	return nil, "", s.err
}

func TestRequestIDAndSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, nil)
	resp := ts.do(http.MethodGet, "/healthz", "", nil, "X-Request-Id", "trace-123.abc")
	if got := resp.Header.Get("X-Request-Id"); got != "trace-123.abc" {
		t.Fatalf("request id %q, want the client's", got)
	}
	resp = ts.do(http.MethodGet, "/healthz", "", nil, "X-Request-Id", "bad id with spaces")
	if got := resp.Header.Get("X-Request-Id"); got == "bad id with spaces" || !core.ValidID(got) {
		t.Fatalf("request id %q: a bad one must be replaced by a fresh id", got)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if !strings.Contains(ts.logs.String(), `"request_id":"trace-123.abc"`) {
		t.Fatal("the request id is not in the request log")
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	resp := ts.do(http.MethodGet, "/openapi.json", "", nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d", resp.Status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	resp.decode(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			// The registry's, the marketplace's, billing's and payments'
			// routes are checked against the document by their own tests:
			// this server has none of them.
			var o struct {
				ServedBy string `json:"x-relay-served-by"`
			}
			json.Unmarshal(op, &o)
			if slices.Contains([]string{"registry", "marketplace", "billing", "payments"}, o.ServedBy) {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	// The routes Fiber really registered, not the table they came from.
	served := map[string]bool{}
	for _, r := range ts.Server.app.GetRoutes(true) {
		// The Studio's pages are the web console's, not operations of the
		// API (TestStudioServing checks them).
		if r.Method == http.MethodHead || r.Method == "USE" || r.Path == "/studio" || strings.HasPrefix(r.Path, "/studio/") {
			continue
		}
		served[r.Method+" "+openAPIPath(r.Path)] = true
	}
	for op := range served {
		if !documented[op] {
			t.Errorf("%s is served but not in openapi.json", op)
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("%s is in openapi.json but not served", op)
		}
	}
	if len(served) == 0 {
		t.Fatal("no routes found")
	}
	if string(resp.Body) != string(schemas.OpenAPI()) {
		t.Fatal("/openapi.json differs from the embedded document")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	var redisDown error
	ts := newTestServer(t, func(c *Config) {
		c.ReadyCacheTTL = time.Nanosecond // every probe checks afresh
		c.ReadyChecks = map[string]func(context.Context) error{
			"redis": func(context.Context) error { return redisDown },
		}
	})
	_, keys := ts.workspace("acme")
	if resp := ts.do(http.MethodGet, "/healthz", "", nil); resp.Status != http.StatusOK {
		t.Fatalf("healthz %d", resp.Status)
	}
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	resp := ts.do(http.MethodGet, "/readyz", "", nil)
	resp.decode(t, &ready)
	if resp.Status != http.StatusOK || ready.Checks["database"] != "ok" || ready.Checks["redis"] != "ok" {
		t.Fatalf("readyz %d %s", resp.Status, resp.Body)
	}
	redisDown = errors.New("connection refused")
	resp = ts.do(http.MethodGet, "/readyz", "", nil)
	resp.decode(t, &ready)
	if resp.Status != http.StatusServiceUnavailable || ready.Checks["redis"] != "failing" || ready.Checks["database"] != "ok" {
		t.Fatalf("readyz with redis down: %d %s", resp.Status, resp.Body)
	}

	ts.do(http.MethodGet, "/v1/keys/"+core.NewID(), keys[core.RoleAdmin], nil)
	ts.do(http.MethodGet, "/v1/keys", keys[core.RoleAdmin], nil)
	metrics := string(ts.do(http.MethodGet, "/metrics", "", nil).Body)
	for _, want := range []string{
		`relay_http_requests_total{method="GET",route="/v1/keys",status="200"} 1`,
		`relay_http_requests_total{method="GET",route="/v1/keys/{id}",status="404"} 1`,
		`relay_http_request_duration_seconds_bucket{method="GET",route="/v1/keys",status="200",le="+Inf"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestKeysListPaginates(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	admin := keys[core.RoleAdmin]
	for i := 0; i < 4; i++ { // 3 + 4 = 7 keys
		if resp := ts.do(http.MethodPost, "/v1/keys", admin, map[string]string{"role": "viewer"}); resp.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", resp.Status, resp.Body)
		}
	}
	var seen []string
	path := "/v1/keys?limit=3"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		var page struct {
			Data       []core.APIKey `json:"data"`
			NextCursor *string       `json:"next_cursor"`
		}
		ts.do(http.MethodGet, path, admin, nil).decode(t, &page)
		for _, k := range page.Data {
			seen = append(seen, k.ID)
		}
		if page.NextCursor == nil {
			break
		}
		path = "/v1/keys?limit=3&cursor=" + *page.NextCursor
	}
	if len(seen) != 7 || !sort.StringsAreSorted(seen) {
		t.Fatalf("saw %d keys %v, want 7 in creation order", len(seen), seen)
	}
}

// A burst of /readyz probes pings the dependencies once per ReadyCacheTTL.
func TestReadyzReusesItsResult(t *testing.T) {
	var probes atomic.Int64
	ts := newTestServer(t, func(c *Config) {
		c.ReadyCacheTTL = time.Hour
		c.ReadyChecks = map[string]func(context.Context) error{
			"redis": func(context.Context) error { probes.Add(1); return nil },
		}
	})
	for range 5 {
		if resp := ts.do(http.MethodGet, "/readyz", "", nil); resp.Status != http.StatusOK {
			t.Fatalf("readyz %d", resp.Status)
		}
	}
	if n := probes.Load(); n != 1 {
		t.Fatalf("%d probes for 5 requests, want 1", n)
	}
}

// A server stopped as soon as it starts stops: Shutdown before Serve has
// begun to accept must not leave Serve accepting for ever.
func TestShutdownRightAfterStart(t *testing.T) {
	cfg := newTestServer(t, nil).Server.cfg
	for i := range 50 {
		srv := New(cfg)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatalf("try %d: Serve still runs 10 s after Shutdown", i+1)
		}
	}
}
