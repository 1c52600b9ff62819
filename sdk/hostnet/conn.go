//go:build !wasip1

package hostnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// closeWait bounds how long Close waits for the host to end the stream
// after the connector has closed its side: the host closes the connection
// once every byte before has been written.
const closeWait = 5 * time.Second

// Dial asks the host behind c for a connection to address. ctx bounds the
// dial only, as it does for a net.Dialer: the connection lives until it is
// closed. A refused host or address is an *egress.DeniedError; a failure
// to connect a *net.OpError.
func Dial(ctx context.Context, c connectorv1.HostClient, network, address string) (net.Conn, error) {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	fail := func(err error) (net.Conn, error) {
		stop()
		cancel()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	stream, err := c.Dial(sctx)
	if err != nil {
		return fail(err)
	}
	if err := stream.Send(&connectorv1.DialFrame{Network: network, Address: address}); err != nil {
		return fail(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fail(err)
	}
	if !stop() {
		cancel()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	if e := first.GetError(); e != nil {
		cancel()
		host, _, _ := net.SplitHostPort(address)
		if e.GetCode() == connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED {
			return nil, egress.DeniedFromMessage(host, e.GetMessage())
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New(e.GetMessage())}
	}
	conn := &streamConn{
		stream: stream, cancel: cancel,
		local: addrOf(network, first.GetLocalAddr()), remote: addrOf(network, first.GetRemoteAddr()),
		frames: make(chan []byte), ended: make(chan struct{}), closed: make(chan struct{}),
	}
	conn.readDL.init()
	conn.writeDL.init()
	go conn.receive()
	return conn, nil
}

// streamConn is a connection the host holds, as a net.Conn: its bytes
// travel as DialFrames on one Host.Dial stream.
type streamConn struct {
	stream        connectorv1.Host_DialClient
	cancel        context.CancelFunc
	local, remote net.Addr

	frames chan []byte   // the peer's bytes, a frame at a time
	ended  chan struct{} // closed once the host has ended the stream
	endErr error         // why, io.EOF when it ended cleanly; set before ended closes
	closed chan struct{} // closed by Close

	readMu  sync.Mutex
	pending []byte // the rest of the frame a Read did not take whole

	writeMu  sync.Mutex
	timedOut atomic.Bool // a write deadline passed during a Send, which broke the stream

	closeOnce sync.Once
	readDL    deadline
	writeDL   deadline
}

// receive hands the host's frames to Read until the stream ends.
func (c *streamConn) receive() {
	for {
		f, err := c.stream.Recv()
		if err != nil {
			c.endErr = err
			close(c.ended)
			return
		}
		if len(f.GetData()) == 0 {
			continue
		}
		select {
		case c.frames <- f.GetData():
		case <-c.closed:
			c.endErr = net.ErrClosed
			close(c.ended)
			return
		}
	}
}

func (c *streamConn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(c.pending) == 0 {
		if len(b) == 0 {
			return 0, nil
		}
		select {
		case <-c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case <-c.readDL.done():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		select {
		case f := <-c.frames:
			c.pending = f
		case <-c.ended:
			if errors.Is(c.endErr, io.EOF) {
				return 0, io.EOF
			}
			return 0, c.opError("read", c.endErr)
		case <-c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case <-c.readDL.done():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *streamConn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	// A Send that flow control holds past the write deadline cannot be
	// taken back: the stream is cut, as a TLS connection is unusable after
	// a write timeout anyway.
	stop := c.writeDL.onDone(func() {
		c.timedOut.Store(true)
		c.cancel()
	})
	defer stop()
	select {
	case <-c.closed:
		return 0, c.opError("write", net.ErrClosed)
	case <-c.writeDL.done():
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	default:
	}
	written := 0
	for written < len(b) {
		chunk := b[written:min(len(b), written+frameSize)]
		if err := c.stream.Send(&connectorv1.DialFrame{Data: chunk}); err != nil {
			if c.timedOut.Load() {
				return written, c.opError("write", os.ErrDeadlineExceeded)
			}
			return written, c.opError("write", err)
		}
		written += len(chunk)
	}
	return written, nil
}

// Close closes the connector's side of the stream, which has the host
// close the connection once what was written has gone out, and waits a
// moment for the host to end the stream before cutting it.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.writeMu.Lock()
		_ = c.stream.CloseSend()
		c.writeMu.Unlock()
		t := time.NewTimer(closeWait)
		select {
		case <-c.ended:
		case <-t.C:
		}
		t.Stop()
		c.cancel()
		c.readDL.stop()
		c.writeDL.stop()
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	c.readDL.set(t)
	c.writeDL.set(t)
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.readDL.set(t)
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.writeDL.set(t)
	return nil
}

func (c *streamConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.remote.Network(), Source: c.local, Addr: c.remote, Err: err}
}

// addrOf is the address the host reported, as a *net.TCPAddr when it
// parses as ip:port.
func addrOf(network, s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return hostAddr{network, s}
}

type hostAddr struct{ network, s string }

func (a hostAddr) Network() string { return a.network }
func (a hostAddr) String() string  { return a.s }

// deadline is a settable point in time whose passing closes a channel, as
// a net.Conn's read or write deadline does: setting a new one replaces the
// timer and, when the old deadline had passed, the channel.
type deadline struct {
	mu    sync.Mutex
	gen   int // counts sets, so that a timer of an earlier deadline does nothing
	timer *time.Timer
	ch    chan struct{} // closed once the deadline has passed
	hooks map[int]func()
	next  int
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch:
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.expireLocked()
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			d.expireLocked()
		}
	})
}

func (d *deadline) expireLocked() {
	select {
	case <-d.ch:
		return
	default:
	}
	close(d.ch)
	for _, f := range d.hooks {
		go f()
	}
}

func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// onDone runs f if the deadline passes before the returned stop is called.
func (d *deadline) onDone(f func()) (stop func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hooks == nil {
		d.hooks = map[int]func(){}
	}
	id := d.next
	d.next++
	d.hooks[id] = f
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.hooks, id)
	}
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
	}
}
