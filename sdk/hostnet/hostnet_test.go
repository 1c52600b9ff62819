package hostnet_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/hostnet"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// serve runs a Server for g on a real gRPC server on a Unix socket, as the
// host's broker does, and returns a client of it.
func serve(t *testing.T, g *egress.Guard) connectorv1.HostClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := hostnet.NewServer(g, hostnet.Options{})
	gs := s.Register(nil)
	go gs.Serve(l)
	t.Cleanup(func() { gs.Stop(); s.Close() })
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return connectorv1.NewHostClient(cc)
}

func TestFetchGoesThroughTheGuard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Header.Get("X-Token"))
		io.WriteString(w, "hello "+r.Method)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	allowed := serve(t, egress.New([]string{"*"}, loopback))
	resp, err := allowed.Fetch(ctx, &connectorv1.HttpRequest{Url: srv.URL, Headers: []*connectorv1.Header{{Name: "X-Token", Value: "t1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError() != nil || resp.GetStatus() != 200 || string(resp.GetBody()) != "hello GET" {
		t.Fatalf("got %v", resp)
	}
	var seen string
	for _, h := range resp.GetHeaders() {
		if h.GetName() == "X-Seen" {
			seen = h.GetValue()
		}
	}
	if seen != "t1" {
		t.Errorf("the request's header did not arrive: %q", seen)
	}

	// Without the operator's allowance, loopback is refused before any
	// connection is made.
	denied := serve(t, egress.New([]string{"*"}, nil))
	resp, err = denied.Fetch(ctx, &connectorv1.HttpRequest{Url: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetError(); e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED || !strings.Contains(e.GetMessage(), "loopback") {
		t.Errorf("loopback without the allowance: %v", resp)
	}
}

// A connection through the host reads and writes as a TCP connection
// does, with its peer's address, deadlines and EOF.
func TestDialCarriesAConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == "quit\n" {
						io.WriteString(c, "bye\n")
						return
					}
					if line == "silent\n" {
						continue
					}
					io.WriteString(c, strings.ToUpper(line))
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := serve(t, egress.New([]string{"*"}, loopback))

	conn, err := hostnet.Dial(ctx, c, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.RemoteAddr().String() != l.Addr().String() {
		t.Errorf("remote address %s, want %s", conn.RemoteAddr(), l.Addr())
	}
	r := bufio.NewReader(conn)
	big := strings.Repeat("x", 100<<10) + "\n" // several frames
	for _, line := range []string{"hello\n", big} {
		if _, err := io.WriteString(conn, line); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != strings.ToUpper(line) {
			t.Fatalf("read %d bytes (%v), want the line back in upper case", len(got), err)
		}
	}

	// A read deadline ends a read that gets nothing, as a timeout.
	io.WriteString(conn, "silent\n")
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = r.ReadByte()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	conn.SetReadDeadline(time.Time{})

	// The peer's close is EOF after its last bytes.
	io.WriteString(conn, "quit\n")
	if got, err := r.ReadString('\n'); got != "bye\n" || err != nil {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the peer closed: %v, want EOF", err)
	}
	conn.Close()
	if _, err := conn.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

func TestDialRefusals(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Loopback without the operator's allowance.
	c := serve(t, egress.New([]string{"*"}, nil))
	_, err = hostnet.Dial(ctx, c, "tcp", l.Addr().String())
	var denied *egress.DeniedError
	if !errors.As(err, &denied) || denied.Host != "127.0.0.1" || denied.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("loopback: %v, want an *egress.DeniedError for 127.0.0.1", err)
	}
	// A host the manifest does not declare.
	c = serve(t, egress.New([]string{"api.example.com"}, loopback))
	_, err = hostnet.Dial(ctx, c, "tcp", "localhost:25")
	if !errors.As(err, &denied) || !strings.Contains(denied.Reason, "declared egress") {
		t.Errorf("undeclared host: %v", err)
	}
	// Datagrams do not travel on a stream.
	c = serve(t, egress.New([]string{"*"}, loopback))
	_, err = hostnet.Dial(ctx, c, "udp", l.Addr().String())
	if !errors.As(err, &denied) || !strings.Contains(denied.Reason, "TCP only") {
		t.Errorf("udp: %v", err)
	}
	// Nothing listening: a failure to connect, not a refusal.
	addr := l.Addr().String()
	l.Close()
	_, err = hostnet.Dial(ctx, c, "tcp", addr)
	var op *net.OpError
	if !errors.As(err, &op) || errors.As(err, &denied) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: %v", err)
	}
}
