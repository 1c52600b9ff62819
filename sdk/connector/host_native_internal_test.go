//go:build !wasip1

package connector

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/hostnet"
	"github.com/relayhq/relay/sdk/internal/hostdial"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// lendNetwork makes this process use, as a sandboxed connector does after
// OpenHost, a host network served through hostGuard over a real gRPC
// connection, until the test ends.
func lendNetwork(t *testing.T, hostGuard *egress.Guard) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := hostnet.NewServer(hostGuard, hostnet.Options{})
	gs := s.Register(nil)
	go gs.Serve(l)
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	useHost(connectorv1.NewHostClient(cc))
	t.Cleanup(func() {
		host.Store(nil)
		hostdial.Set(nil)
		cc.Close()
		gs.Stop()
		s.Close()
	})
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// With the host's network, the host checks the addresses with its own
// policy, the process's guard the host names, and every failure keeps the
// class it has when the process dials itself.
func TestFetchThroughTheHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The process's own guard does not allow loopback: only a request the
	// host made, with the operator's allowance, gets an answer.
	local := egress.New([]string{"*"}, nil)

	lendNetwork(t, egress.New([]string{"*"}, loopback))
	resp, err := fetch(ctx, local, "", &HTTPRequest{URL: srv.URL, MaxResponseBody: 10})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(resp.Body) != "xxxxxxxxxx" || !resp.Truncated {
		t.Errorf("got %d %q truncated %v", resp.StatusCode, resp.Body, resp.Truncated)
	}

	// A host name the process's guard does not declare is refused here.
	_, err = fetch(ctx, egress.New([]string{"api.example.com"}, nil), "", &HTTPRequest{URL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)})
	var denied *egress.DeniedError
	if !errors.As(err, &denied) || !strings.Contains(denied.Reason, "declared egress") {
		t.Errorf("an undeclared host: %v", err)
	}
	// A malformed request is the caller's mistake, as natively.
	_, err = fetch(ctx, local, "", &HTTPRequest{URL: "ftp://example.com/"})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidInput {
		t.Errorf("an ftp URL: %v", err)
	}
}

func TestFetchRefusedByTheHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lendNetwork(t, egress.New([]string{"*"}, nil))
	// Allowed here, refused by the host: the refusal comes back as the
	// *egress.DeniedError the process would have made itself.
	_, err := fetch(ctx, egress.New([]string{"*"}, loopback), "", &HTTPRequest{URL: srv.URL})
	var denied *egress.DeniedError
	if !errors.As(err, &denied) || denied.Host != "127.0.0.1" || denied.Addr != netip.MustParseAddr("127.0.0.1") || !strings.Contains(denied.Reason, "loopback") {
		t.Errorf("got %v (%T), want the host's refusal of 127.0.0.1", err, err)
	}
}

func TestGuardDialsThroughTheHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "echo "+line)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lendNetwork(t, egress.New([]string{"*"}, loopback))
	// The process's guard would refuse loopback; the host allows it.
	c, err := egress.New([]string{"*"}, nil).DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hi\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); line != "echo hi\n" || err != nil {
		t.Errorf("read %q, %v", line, err)
	}
	if c.RemoteAddr().String() != l.Addr().String() {
		t.Errorf("remote address %s", c.RemoteAddr())
	}
}
