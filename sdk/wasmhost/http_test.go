package wasmhost_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// httpCall has the misbehave guest make req with relay.http_request and
// returns the HttpResponse it got. The http action's input is the encoded
// HttpRequest, not JSON: marked validated, the host passes it on.
func httpCall(t *testing.T, ctx context.Context, i *wasmhost.Instance, req *connectorv1.HttpRequest) *connectorv1.HttpResponse {
	t.Helper()
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := i.Execute(ctx, &connectorv1.ActionRequest{Action: "http", InputJson: raw, InputValidated: true})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	var resp connectorv1.HttpResponse
	if err := proto.Unmarshal(ex.GetOutputJson(), &resp); err != nil {
		t.Fatalf("the guest's answer is not an HttpResponse: %v", err)
	}
	return &resp
}

func header(resp *connectorv1.HttpResponse, name string) string {
	for _, h := range resp.GetHeaders() {
		if strings.EqualFold(h.GetName(), name) {
			return h.GetValue()
		}
	}
	return ""
}

// localhostURL is srv's URL with the name localhost, which an egress list
// can name (an address literal needs "*").
func localhostURL(srv *httptest.Server) string {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "http://localhost:" + port
}

func TestHTTPRequest(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Method", r.Method)
			w.Header().Set("X-Token", r.Header.Get("X-Token"))
			_, _ = w.Write(body)
		case "/metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/other-port":
			http.Redirect(w, r, localhostURL(other)+"/", http.StatusFound)
		case "/same":
			http.Redirect(w, r, "/echo", http.StatusFound)
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 3000)))
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	defer srv.Close()
	base := localhostURL(srv)

	ctx := context.Background()
	e := newEngine(t, wasmhost.Options{MaxHTTPResponse: 1024})
	compileWith := func(g *egress.Guard) *wasmhost.Instance {
		m, err := e.CompileWith(ctx, guest(t, "misbehave"), wasmhost.ModuleOptions{Egress: g})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(ctx) })
		return instantiate(t, m)
	}
	allowed := compileWith(egress.New([]string{"localhost"}, loopback))

	t.Run("allowed", func(t *testing.T) {
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{
			Method: "POST", Url: base + "/echo", Body: []byte("ping"),
			Headers: []*connectorv1.Header{{Name: "X-Token", Value: "t1"}},
		})
		if resp.GetError() != nil || resp.GetStatus() != 200 || string(resp.GetBody()) != "ping" ||
			header(resp, "X-Method") != "POST" || header(resp, "X-Token") != "t1" {
			t.Fatalf("response = %v", resp)
		}
	})
	t.Run("redirect to the metadata address is not followed", func(t *testing.T) {
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{Url: base + "/metadata"})
		if resp.GetStatus() != http.StatusFound || header(resp, "Location") != "http://169.254.169.254/latest/meta-data/" || resp.GetError() != nil {
			t.Fatalf("response = %v; want the 302 itself, not followed", resp)
		}
	})
	t.Run("redirect to another port is not followed", func(t *testing.T) {
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{Url: base + "/other-port"})
		if resp.GetStatus() != http.StatusFound || otherHits.Load() != 0 {
			t.Fatalf("response = %v, other server hit %d times; want the 302, not followed", resp, otherHits.Load())
		}
	})
	t.Run("same-origin redirect comes back to the guest", func(t *testing.T) {
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{Url: base + "/same"})
		if resp.GetStatus() != http.StatusFound || header(resp, "Location") != "/echo" || resp.GetError() != nil {
			t.Fatalf("response = %v; want the 302 itself, for the guest to follow or not", resp)
		}
	})
	t.Run("body cut at the cap", func(t *testing.T) {
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{Url: base + "/big"})
		if len(resp.GetBody()) != 1024 || !resp.GetBodyTruncated() {
			t.Fatalf("body %d bytes, truncated %v; want 1024, true", len(resp.GetBody()), resp.GetBodyTruncated())
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		start := time.Now()
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{Url: base + "/hang", TimeoutMs: 100})
		if resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_RETRYABLE || time.Since(start) > 2*time.Second {
			t.Fatalf("response = %v after %v; want RETRYABLE after 100 ms", resp, time.Since(start))
		}
	})
	t.Run("certificate that does not verify", func(t *testing.T) {
		tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the host refuses
		tlsSrv.StartTLS()
		defer tlsSrv.Close()
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{Url: strings.Replace(localhostURL(tlsSrv), "http:", "https:", 1) + "/"})
		if resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_PERMANENT || !strings.Contains(resp.GetError().GetMessage(), "certificate") {
			t.Fatalf("response = %v; want PERMANENT, naming the certificate", resp)
		}
	})
	// Names go out as the guest spelled them, except those net/http writes
	// itself: a "content-length" or "user-agent" of the guest's must not go
	// out beside net/http's own.
	t.Run("header names as the guest spelled them", func(t *testing.T) {
		// A server of raw bytes: net/http's would canonicalize the names.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 4096)
			var req []byte
			for !strings.Contains(string(req), "\r\n\r\n") {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				req = append(req, buf[:n]...)
			}
			head, _, _ := strings.Cut(string(req), "\r\n\r\n")
			var lines []string
			for _, l := range strings.Split(head, "\r\n")[1:] {
				name, _, _ := strings.Cut(strings.ToLower(l), ":")
				if name == "webhook-id" || name == "content-length" || name == "user-agent" {
					lines = append(lines, l)
				}
			}
			body := strings.Join(lines, "\n")
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
		}()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		resp := httpCall(t, ctx, allowed, &connectorv1.HttpRequest{
			Method: "POST", Url: "http://localhost:" + port + "/", Body: []byte("ping"),
			Headers: []*connectorv1.Header{
				{Name: "webhook-id", Value: "msg_1"}, {Name: "content-length", Value: "999"}, {Name: "user-agent", Value: "guest/1"},
			},
		})
		want := "webhook-id: msg_1\nUser-Agent: guest/1\nContent-Length: 4"
		got := strings.Split(string(resp.GetBody()), "\n")
		slices.Sort(got)
		wantLines := strings.Split(want, "\n")
		slices.Sort(wantLines)
		if resp.GetError() != nil || !slices.Equal(got, wantLines) {
			t.Fatalf("response = %v; want the server to have seen exactly %q", resp, wantLines)
		}
	})
	t.Run("call deadline ends the request", func(t *testing.T) {
		i := compileWith(egress.New([]string{"localhost"}, loopback))
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		raw, _ := proto.Marshal(&connectorv1.HttpRequest{Url: base + "/hang"})
		start := time.Now()
		_, err := i.Execute(cctx, &connectorv1.ActionRequest{Action: "http", InputJson: raw, InputValidated: true})
		if elapsed := time.Since(start); elapsed > 300*time.Millisecond {
			t.Errorf("the call returned after %v", elapsed)
		}
		wantError(t, err, wasmhost.KindTimeout)
	})

	for _, tc := range []struct {
		name  string
		guard *egress.Guard
		url   string
		says  string
	}{
		{"host not in egress", egress.New([]string{"api.example.com"}, nil), "http://other.example.net/", "not in the connector's declared egress"},
		{"no egress at all", nil, base + "/echo", "no network access"},
		{"loopback not allowed by the operator", egress.New([]string{"localhost"}, nil), base + "/echo", "loopback"},
		{"address literal", egress.New([]string{"localhost"}, loopback), srv.URL + "/echo", "address literals"},
		{"metadata address", egress.New([]string{"*"}, nil), "http://169.254.169.254/latest/meta-data/", "link-local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := httpCall(t, ctx, compileWith(tc.guard), &connectorv1.HttpRequest{Url: tc.url})
			if resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED || !strings.Contains(resp.GetError().GetMessage(), tc.says) {
				t.Fatalf("response = %v; want EGRESS_DENIED saying %q", resp, tc.says)
			}
		})
	}
	for _, tc := range []struct {
		name string
		req  *connectorv1.HttpRequest
	}{
		{"relative URL", &connectorv1.HttpRequest{Url: "/echo"}},
		{"ftp", &connectorv1.HttpRequest{Url: "ftp://localhost/"}},
		{"bad method", &connectorv1.HttpRequest{Method: "GE T", Url: base + "/echo"}},
		{"bad header", &connectorv1.HttpRequest{Url: base + "/echo", Headers: []*connectorv1.Header{{Name: "X-A", Value: "a\r\nb"}}}},
		{"user info", &connectorv1.HttpRequest{Url: "http://u:p@localhost/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := httpCall(t, ctx, allowed, tc.req)
			if resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
				t.Fatalf("response = %v; want INVALID_INPUT", resp)
			}
		})
	}
	t.Run("bytes that do not decode", func(t *testing.T) {
		ex, err := allowed.Execute(ctx, &connectorv1.ActionRequest{Action: "http", InputJson: []byte{0x0f, 0x0f}, InputValidated: true})
		if err != nil {
			t.Fatal(err)
		}
		var resp connectorv1.HttpResponse
		if err := proto.Unmarshal(ex.GetOutputJson(), &resp); err != nil || resp.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
			t.Fatalf("response = %v, %v; want INVALID_INPUT", &resp, err)
		}
	})
}
