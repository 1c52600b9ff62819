package connectortest

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// HangingPeer is a test peer that never answers: a TCP listener on
// 127.0.0.1 that accepts every connection, reads and discards whatever
// arrives, and never sends a byte. An HTTP request to it waits for a
// response, a TLS client for the server's hello, an SMTP client for the
// greeting, forever. The kit starts one for the deadline check and hands
// it to Config.Hang, which points a fixture at it.
type HangingPeer struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// Host is "127.0.0.1" and Port the listener's port, for connectors
	// whose config takes them apart.
	Host string
	Port int
	// URL is "http://127.0.0.1:<port>". An https:// URL to Addr hangs as
	// well, in the TLS handshake.
	URL string
}

// hangingPeer is the listener behind a HangingPeer, and what it saw: the
// kit learns from it whether a connector's handler let go of a connection
// once its deadline had passed, which the gRPC answer cannot show.
type hangingPeer struct {
	HangingPeer
	ln net.Listener

	mu    sync.Mutex
	conns []*peerConn
	done  bool
}

// peerConn is one connection the peer accepted.
type peerConn struct {
	conn     net.Conn
	accepted time.Time
	closed   time.Time // zero while the connector holds it open
}

// startHangingPeer listens on 127.0.0.1 until the test ends.
func startHangingPeer(t tb) *hangingPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("connectortest: starting the hanging peer: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	p := &hangingPeer{ln: ln, HangingPeer: HangingPeer{
		Addr: addr.String(), Host: addr.IP.String(), Port: addr.Port,
		URL: "http://" + addr.String(),
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.serve(&wg)
	}()
	t.Cleanup(func() {
		p.close()
		wg.Wait()
	})
	return p
}

func (p *hangingPeer) serve(wg *sync.WaitGroup) {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c := &peerConn{conn: conn, accepted: time.Now()}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			conn.Close()
			return
		}
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Read until the connector closes its end (EOF) or resets it.
			_, _ = io.Copy(io.Discard, conn)
			conn.Close()
			p.mu.Lock()
			c.closed = time.Now()
			p.mu.Unlock()
		}()
	}
}

func (p *hangingPeer) close() {
	p.mu.Lock()
	p.done = true
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.conn.Close()
	}
}

// peerConnState is what the kit reads of a connection.
type peerConnState struct {
	accepted, closed time.Time
}

// since returns the connections accepted after the first n, as they are now.
func (p *hangingPeer) since(n int) []peerConnState {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []peerConnState
	for _, c := range p.conns[min(n, len(p.conns)):] {
		out = append(out, peerConnState{accepted: c.accepted, closed: c.closed})
	}
	return out
}

// count is how many connections the peer has accepted so far.
func (p *hangingPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// watch follows the connections accepted after the first n, from a call
// with the given deadline that returned at answered, until every one is
// closed and settle has passed since both the deadline and the answer (so
// that a connection made late is seen too), or until the deadline plus
// bound, whichever comes first.
func (p *hangingPeer) watch(n int, deadline, answered time.Time, settle, bound time.Duration) []peerConnState {
	quiet := deadline
	if answered.After(quiet) {
		quiet = answered
	}
	quiet = quiet.Add(settle)
	limit := deadline.Add(bound)
	for {
		conns := p.since(n)
		now := time.Now()
		if !now.Before(limit) || (!now.Before(quiet) && openConns(conns) == 0) {
			return conns
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openConns(conns []peerConnState) int {
	n := 0
	for _, c := range conns {
		if c.closed.IsZero() {
			n++
		}
	}
	return n
}
