package httpapi

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// When the server refuses a request before reading its body (a body over
// the limit, headers that do not parse), fasthttp answers and closes the
// connection at once. A close with the client's bytes still arriving
// makes the kernel reset the connection, and a reset can reach the client
// before it has read the answer (or while it is still sending, which many
// clients take as the end): it sees "connection reset" instead of 413.
// So such a connection lingers: the server ends its side after the answer
// (the client reads the answer, then end of stream), reads and drops what
// the client is still sending, and closes once the client has, or after
// lingerTimeout or lingerMax bytes, whichever comes first.
const (
	lingerTimeout = 5 * time.Second
	lingerMax     = 16 << 20
)

// lingerListener hands out connections that can linger on close.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn is a connection that, once asked to, lingers when closed.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
	once   sync.Once
}

// lingerOnClose makes the coming Close linger.
func (c *lingerConn) lingerOnClose() { c.linger.Store(true) }

func (c *lingerConn) Close() error {
	var err error
	c.once.Do(func() {
		hc, ok := c.Conn.(interface{ CloseWrite() error })
		if !c.linger.Load() || !ok {
			err = c.Conn.Close()
			return
		}
		if err = hc.CloseWrite(); err != nil {
			err = c.Conn.Close()
			return
		}
		// Not on the caller's goroutine: that is one of fasthttp's workers.
		go func() {
			c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
			io.CopyN(io.Discard, c.Conn, lingerMax)
			c.Conn.Close()
		}()
	})
	return err
}
