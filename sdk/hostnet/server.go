//go:build !wasip1

// Package hostnet is the network a host lends a native connector whose
// process has none of its own: the protocol's Host service (Fetch and
// Dial), which a Relay host serves over go-plugin's broker to a connector
// it started in a sandbox (docs/protocol.md, Host network). Server is the
// host's side; Dial is the connector's side of a connection. Every request
// and connection goes through the host's egress guard for the connector
// version, the same rules and the same code (package outbound) as a WASM
// module's relay.http_request.
package hostnet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/internal/outbound"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Defaults of Options.
const (
	// DefaultHTTPTimeout bounds a Fetch whose request sets no timeout_ms,
	// as the WASM host's default does; the call's deadline bounds it too.
	DefaultHTTPTimeout = 30 * time.Second
	// DefaultMaxHTTPResponse caps a response body: what fits in one
	// message with room for the headers.
	DefaultMaxHTTPResponse = protocol.MaxMessageSize - 128<<10
)

// frameSize is the most bytes of a connection one DialFrame carries.
const frameSize = 32 << 10

// Options tune a Server; zero values take the defaults.
type Options struct {
	HTTPTimeout     time.Duration
	MaxHTTPResponse int
}

// Server serves the Host service for one connector version through its
// egress guard. Its methods are safe for concurrent use.
type Server struct {
	connectorv1.UnimplementedHostServer
	guard  *egress.Guard
	client *http.Client
	o      Options
}

// NewServer returns a server whose requests and connections go through g
// (nil refuses everything).
func NewServer(g *egress.Guard, o Options) *Server {
	if g == nil {
		g = egress.New(nil, nil)
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	if o.MaxHTTPResponse <= 0 || o.MaxHTTPResponse > DefaultMaxHTTPResponse {
		o.MaxHTTPResponse = DefaultMaxHTTPResponse
	}
	return &Server{guard: g, client: outbound.NewClient(g), o: o}
}

// Register adds the Host service to s: for go-plugin's
// GRPCBroker.AcceptAndServe, with protocol.ServerOptions' limits.
func (s *Server) Register(opts []grpc.ServerOption) *grpc.Server {
	g := protocol.ServerOptions(opts)
	connectorv1.RegisterHostServer(g, s)
	return g
}

// Close drops the idle connections the server keeps for Fetch.
func (s *Server) Close() { s.client.CloseIdleConnections() }

// Fetch makes one HTTP request within the call's deadline, which gRPC
// carries from the connector.
func (s *Server) Fetch(ctx context.Context, req *connectorv1.HttpRequest) (*connectorv1.HttpResponse, error) {
	return outbound.Serve(ctx, s.client, s.guard, req, s.o.HTTPTimeout, s.o.MaxHTTPResponse), nil
}

// Dial connects through the guard and carries the connection's bytes
// until either side ends it.
func (s *Server) Dial(stream connectorv1.Host_DialServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	conn, failure := s.dial(stream.Context(), first.GetNetwork(), first.GetAddress())
	if failure != nil {
		return stream.Send(&connectorv1.DialFrame{Error: failure})
	}
	defer conn.Close()
	if err := stream.Send(&connectorv1.DialFrame{RemoteAddr: conn.RemoteAddr().String(), LocalAddr: conn.LocalAddr().String()}); err != nil {
		return err
	}
	// The connector's frames go to the peer until it closes its side of
	// the stream, which closes the connection, or the stream breaks.
	go func() {
		for {
			f, err := stream.Recv()
			if err != nil {
				conn.Close()
				return
			}
			if _, err := conn.Write(f.GetData()); err != nil {
				conn.Close()
				return
			}
		}
	}()
	// The peer's bytes go to the connector until the connection ends;
	// returning ends the stream, which the connector reads as EOF.
	buf := make([]byte, frameSize)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if serr := stream.Send(&connectorv1.DialFrame{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		if err != nil {
			return nil
		}
	}
}

// dial connects to address through the guard, TCP only: a stream carries
// a byte stream, not datagrams.
func (s *Server) dial(ctx context.Context, network, address string) (net.Conn, *connectorv1.Error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED,
			Message: (&egress.DeniedError{Host: address, Reason: "the host connects TCP only, not " + network}).Error()}
	}
	conn, err := s.guard.DialDirect(ctx, network, address)
	if err == nil {
		return conn, nil
	}
	var denied *egress.DeniedError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &denied):
		return nil, &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, Message: denied.Error()}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_PERMANENT, Message: err.Error()}
	default:
		return nil, &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, Message: err.Error()}
	}
}
