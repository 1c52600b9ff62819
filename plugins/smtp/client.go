package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
)

// The client is a minimal SMTP submission client (RFC 5321, STARTTLS RFC
// 3207, AUTH RFC 4954) on net/textproto. net/smtp would do most of it, but
// it hides the final reply of DATA (the "queued as" line callers want), has
// no context, and refuses PLAIN to a loopback host reached by name.

const (
	// defaultTimeout bounds a session when the caller's context has no
	// deadline.
	defaultTimeout = 60 * time.Second
	// quitTimeout bounds the polite goodbye after the work is done.
	quitTimeout = 5 * time.Second
	// maxReplyBytes bounds what a server may send in one session (per TLS
	// phase), so a hostile server cannot exhaust memory with one endless line.
	maxReplyBytes = 1 << 20
	// maxReplyText bounds a server's text quoted in an error.
	maxReplyText = 512
)

// client is one SMTP session, ready to send once dial returns.
type client struct {
	conn   net.Conn
	text   *textproto.Reader
	out    *textproto.Writer
	ext    map[string]string // EHLO keywords (upper case) and their parameters
	server string            // host:port, for messages
	s      *settings
	// redact lists strings that must not reach an error message even if a
	// server echoes them: the password and what AUTH sent.
	redact []string
	// deadline ends the session; stop unhooks the context's cancellation
	// and reports whether it had not fired; release closes everything.
	deadline time.Time
	stop     func() bool
	release  func()
}

// dial connects through the egress guard and leaves a session that has
// greeted, encrypted as the settings say and signed in. tls "none" is
// allowed only when the host's every address is a loopback address, and the
// connected peer is checked again, so a DNS answer that changes in between
// cannot send credentials in clear over a network.
func dial(ctx context.Context, guard *egress.Guard, s *settings) (*client, error) {
	if s.mode == tlsNone {
		if err := requireLoopback(ctx, s.host); err != nil {
			return nil, err
		}
	}
	cancel := func() {}
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
	}
	server := s.addr()
	conn, err := guard.DialContext(ctx, "tcp", server)
	if err != nil {
		cancel()
		var denied *egress.DeniedError
		if errors.As(err, &denied) {
			return nil, fmt.Errorf("connecting to %s: %w", server, err)
		}
		return nil, connector.Retryable(0, "connecting to %s: %v", server, err)
	}
	if s.mode == tlsNone && !isLoopback(conn.RemoteAddr()) {
		conn.Close()
		cancel()
		return nil, tlsNoneRefused(s.host, conn.RemoteAddr().String())
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Cancelling the context ends any read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	c := &client{conn: conn, server: server, s: s, deadline: deadline, stop: stop}
	c.release = func() {
		stop()
		conn.Close()
		cancel()
	}
	if err := c.start(ctx); err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

// start runs the session up to the first MAIL FROM.
func (c *client) start(ctx context.Context) error {
	if c.s.mode == tlsImplicit {
		if err := c.handshake(ctx); err != nil {
			return err
		}
	} else {
		c.attach(c.conn)
	}
	if _, _, err := c.reply(ctx, "greeting", 220); err != nil {
		return err
	}
	if err := c.hello(ctx); err != nil {
		return err
	}
	if c.s.mode == tlsStartTLS {
		if _, ok := c.ext["STARTTLS"]; !ok {
			return connector.Permanent("%s does not offer STARTTLS; refusing to go on without TLS (if it expects TLS from the first byte, as on port 465, set tls to \"implicit\")", c.server)
		}
		if _, _, err := c.cmd(ctx, "STARTTLS", 220, "STARTTLS"); err != nil {
			return err
		}
		// Anything already buffered was sent in clear before the handshake
		// and could pass for a reply inside TLS (response injection).
		if c.text.R.Buffered() > 0 {
			return connector.Permanent("%s sent data after its STARTTLS reply, before the TLS handshake; refusing it", c.server)
		}
		if err := c.handshake(ctx); err != nil {
			return err
		}
		// RFC 3207: forget what was learnt in clear and ask again.
		if err := c.hello(ctx); err != nil {
			return err
		}
	}
	if c.s.username != "" {
		return c.auth(ctx)
	}
	return nil
}

// attach reads and writes the session over rw from now on.
func (c *client) attach(rw io.ReadWriter) {
	c.text = textproto.NewReader(bufio.NewReader(&budgetReader{r: rw, left: maxReplyBytes}))
	c.out = textproto.NewWriter(bufio.NewWriter(rw))
}

func (c *client) handshake(ctx context.Context) error {
	conn := tls.Client(c.conn, c.s.tlsConfig())
	if err := conn.HandshakeContext(ctx); err != nil {
		var verify *tls.CertificateVerificationError
		var header tls.RecordHeaderError
		switch {
		case errors.As(err, &verify):
			return connector.Permanent("TLS with %s: the server's certificate is not trusted: %v (if a private CA signed it, put that CA in ca_pem)", c.server, verify.Err)
		case errors.As(err, &header):
			return connector.Permanent("TLS with %s: the server did not answer with TLS; check that port %d expects tls %q", c.server, c.s.port, c.s.mode)
		}
		return c.ioFailure(ctx, "TLS handshake", err)
	}
	c.conn = conn
	c.attach(conn)
	return nil
}

// hello sends EHLO and records the extensions the server offers.
func (c *client) hello(ctx context.Context) error {
	_, msg, err := c.cmd(ctx, "EHLO", 250, "EHLO %s", localName(c.conn.LocalAddr()))
	if err != nil {
		return err
	}
	c.ext = map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, line := range lines[1:] {
		keyword, params, _ := strings.Cut(strings.TrimSpace(line), " ")
		c.ext[strings.ToUpper(keyword)] = params
	}
	return nil
}

// auth signs in with PLAIN, or LOGIN when the server offers only that.
func (c *client) auth(ctx context.Context) error {
	params, ok := c.ext["AUTH"]
	if !ok {
		return connector.Permanent("%s offers no AUTH; leave username empty if it needs no sign-in", c.server)
	}
	mechs := strings.Fields(strings.ToUpper(params))
	enc := base64.StdEncoding.EncodeToString
	switch {
	case slices.Contains(mechs, "PLAIN"):
		ir := enc([]byte("\x00" + c.s.username + "\x00" + c.s.password))
		c.redact = []string{ir, c.s.password}
		_, _, err := c.cmd(ctx, "AUTH PLAIN", 235, "AUTH PLAIN %s", ir)
		return err
	case slices.Contains(mechs, "LOGIN"):
		user, pass := enc([]byte(c.s.username)), enc([]byte(c.s.password))
		c.redact = []string{pass, c.s.password}
		if _, _, err := c.cmd(ctx, "AUTH LOGIN", 334, "AUTH LOGIN"); err != nil {
			return err
		}
		if _, _, err := c.cmd(ctx, "AUTH LOGIN", 334, "%s", user); err != nil {
			return err
		}
		_, _, err := c.cmd(ctx, "AUTH LOGIN", 235, "%s", pass)
		return err
	}
	return connector.Permanent("%s offers AUTH %s; this connector signs in with PLAIN or LOGIN", c.server, params)
}

// send hands over one message and returns the server's final reply, e.g.
// "250 2.0.0 Ok: queued as 4F2A1". Any refused recipient ends the session
// before DATA, so a message goes to all its recipients or to none.
func (c *client) send(ctx context.Context, from string, rcpts []string, msg []byte) (string, error) {
	mailCmd := "MAIL FROM:" + from
	if size, ok := c.ext["SIZE"]; ok {
		if limit, err := strconv.Atoi(size); err == nil && limit > 0 && len(msg) > limit {
			return "", connector.Permanent("the message is %d bytes; %s accepts at most %d", len(msg), c.server, limit)
		}
		mailCmd += " SIZE=" + strconv.Itoa(len(msg))
	}
	if _, _, err := c.cmd(ctx, "MAIL FROM", 250, "%s", mailCmd); err != nil {
		return "", err
	}
	for _, r := range rcpts {
		if _, _, err := c.cmd(ctx, "RCPT TO:"+r, 25, "RCPT TO:%s", r); err != nil {
			return "", err
		}
	}
	if _, _, err := c.cmd(ctx, "DATA", 354, "DATA"); err != nil {
		return "", err
	}
	w := c.out.DotWriter()
	if _, err := w.Write(msg); err != nil {
		return "", c.ioFailure(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return "", c.ioFailure(ctx, "DATA", err)
	}
	code, reply, err := c.reply(ctx, "end of DATA", 2)
	if err != nil {
		return "", err
	}
	return strconv.Itoa(code) + " " + c.quote(reply), nil
}

// quit says goodbye, briefly, and closes the connection; its errors do not
// matter any more.
func (c *client) quit() {
	defer c.release()
	if !c.stop() {
		return // the context is done: no time for goodbyes
	}
	if d := time.Now().Add(quitTimeout); d.Before(c.deadline) {
		c.conn.SetDeadline(d)
	}
	if c.out.PrintfLine("QUIT") == nil {
		c.text.ReadResponse(221)
	}
}

func (c *client) cmd(ctx context.Context, step string, expect int, format string, args ...any) (int, string, error) {
	if err := c.out.PrintfLine(format, args...); err != nil {
		return 0, "", c.ioFailure(ctx, step, err)
	}
	return c.reply(ctx, step, expect)
}

// reply reads one reply and classifies any other than expect (a code, or
// its first one or two digits).
func (c *client) reply(ctx context.Context, step string, expect int) (int, string, error) {
	code, msg, err := c.text.ReadResponse(expect)
	if err == nil {
		return code, msg, nil
	}
	var unexpected *textproto.Error
	if !errors.As(err, &unexpected) {
		return 0, "", c.ioFailure(ctx, step, err)
	}
	text := fmt.Sprintf("%s: %s replied %d %s", step, c.server, unexpected.Code, c.quote(unexpected.Msg))
	switch {
	// 530 authentication required, 534 mechanism too weak, 535 bad
	// credentials, 538 encryption required for the mechanism, and the
	// enhanced status for bad credentials whatever the code (RFC 4954).
	case slices.Contains([]int{530, 534, 535, 538}, unexpected.Code) || strings.HasPrefix(unexpected.Msg, "5.7.8 "):
		return 0, "", connector.Unauthorized("%s", text)
	case unexpected.Code >= 400 && unexpected.Code < 500:
		return 0, "", connector.Retryable(0, "%s", text)
	}
	return 0, "", connector.Permanent("%s", text)
}

// ioFailure classifies a failure below SMTP: the network, a deadline, or a
// peer that does not speak SMTP. All but the last may pass on a retry.
func (c *client) ioFailure(ctx context.Context, step string, err error) error {
	var netErr net.Error
	var protoErr textproto.ProtocolError
	switch {
	case ctx.Err() != nil:
		return connector.Retryable(0, "%s: talking to %s: %v", step, c.server, context.Cause(ctx))
	case errors.Is(err, errRepliesTooLong):
		return connector.Permanent("%s: %s sent more than %d bytes of replies", step, c.server, maxReplyBytes)
	case errors.As(err, &protoErr):
		return connector.Permanent("%s: %s does not answer in SMTP (%v); check that port %d expects tls %q", step, c.server, c.quote(protoErr.Error()), c.s.port, c.s.mode)
	case errors.As(err, &netErr) && netErr.Timeout():
		return connector.Retryable(0, "%s: %s did not answer in time; check that port %d expects tls %q", step, c.server, c.s.port, c.s.mode)
	case step == "DATA" || step == "end of DATA":
		return connector.Retryable(0, "%s: the connection to %s failed: %v (the server may or may not have accepted the message)", step, c.server, err)
	}
	return connector.Retryable(0, "%s: the connection to %s failed: %v", step, c.server, err)
}

// quote makes a server's text fit for an error message: one line, bounded,
// and without anything secret the server may have echoed.
func (c *client) quote(s string) string {
	for _, secret := range c.redact {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	if len(s) > maxReplyText {
		s = s[:maxReplyText] + "…"
	}
	return s
}

var errRepliesTooLong = errors.New("replies too long")

// budgetReader fails once it has read its budget.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errRepliesTooLong
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// localName is what EHLO says: the address literal of our end (RFC 5321
// §4.1.4 wants it when a client has no name of its own worth giving).
func localName(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "localhost"
	}
	ip := tcp.AddrPort().Addr().Unmap()
	if ip.Is6() {
		return "[IPv6:" + ip.WithZone("").String() + "]"
	}
	return "[" + ip.String() + "]"
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.AddrPort().Addr().Unmap().IsLoopback()
}

// requireLoopback refuses a host that has any address off loopback.
func requireLoopback(ctx context.Context, host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Unmap().IsLoopback() {
			return tlsNoneRefused(host, a.String())
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return connector.Retryable(0, "resolving %s: %v", host, err)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return tlsNoneRefused(host, a.String())
		}
	}
	return nil
}

func tlsNoneRefused(host, addr string) error {
	return &connector.Error{
		Code:    connector.CodeInvalidInput,
		Message: fmt.Sprintf("tls \"none\" would send mail and credentials in clear to %s (%s); it is allowed only to a loopback address", host, addr),
		Fields:  []connector.FieldError{{Pointer: "/tls", Message: "\"none\" is allowed only to a loopback address"}},
	}
}
