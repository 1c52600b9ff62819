// Package outbound holds the rules an outbound HTTP request of a connector
// follows in both forms: the checks made before it is sent and the class
// of a failure to get an answer. The WASM host applies them to a module's
// relay.http_request; the SDK's Fetch applies them natively. One set of
// rules is what makes a connector fail the same way in either form.
package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/relayhq/relay/sdk/egress"
)

// Check checks a request before it is sent: an absolute http or https URL
// without user info, a method that is an HTTP token, header fields that
// are valid as given, and no Host header (the URL sets it). It returns the
// parsed URL, or a message that names the problem and never the whole URL,
// which may carry a token.
func Check(method, rawURL string, header iter.Seq2[string, string]) (*url.URL, string) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "the URL is not an absolute http or https URL"
	}
	if u.User != nil {
		return nil, "the URL carries user info; send credentials in a header"
	}
	if !httpguts.ValidHostHeader(u.Host) || !validMethod(method) {
		return nil, fmt.Sprintf("bad method %q or host", method)
	}
	for name, value := range header {
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Sprintf("bad header %q", name)
		}
		if strings.EqualFold(name, "Host") {
			return nil, "the Host header is set from the URL"
		}
	}
	return u, ""
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if !httpguts.IsTokenRune(r) {
			return false
		}
	}
	return true
}

// Class is what kind of failure a request met.
type Class int

const (
	// Denied: the egress policy refused the host or the address.
	Denied Class = iota
	// Invalid: the request itself is malformed (see Check).
	Invalid
	// Retryable: no answer in time, or a network failure; the request may
	// succeed later.
	Retryable
	// Permanent: the name does not resolve, or the server's certificate
	// does not verify; trying again will not help.
	Permanent
)

// classify classifies err, the failure of a request to host made within
// ctx. The *url.Error of net/http is unwrapped: its message repeats the
// whole URL. A Denied failure's message is the *egress.DeniedError's own.
func classify(ctx context.Context, host string, err error) *Failure {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		denied *egress.DeniedError
		netErr net.Error
		cert   *tls.CertificateVerificationError
		dnsErr *net.DNSError
	)
	switch {
	case errors.As(err, &denied):
		return &Failure{Class: Denied, Message: denied.Error(), Denied: denied}
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return &Failure{Class: Retryable, Message: "request to " + host + ": no answer in time"}
	case errors.As(err, &cert):
		return &Failure{Class: Permanent, Message: "request to " + host + ": " + cert.Error()}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &Failure{Class: Permanent, Message: "request to " + host + ": no such host"}
	default:
		return &Failure{Class: Retryable, Message: "request to " + host + ": " + err.Error()}
	}
}

// Failure is why a request got no answer: its class, and a message that
// names the host, never the whole URL, which may carry a token. Denied
// is the guard's refusal when Class is Denied and the guard gave one.
type Failure struct {
	Class   Class
	Message string
	Denied  *egress.DeniedError
}

// Response is the answer to one request: its status and header as
// received, and its body up to the cap.
type Response struct {
	Status    int
	Header    http.Header
	Body      []byte
	Truncated bool // the body was longer than the cap
}

// NewClient returns the client requests are made with: on a transport
// that dials through g from this process (g.DialDirect: a host lends no
// network it borrowed), keeping up to 8 idle connections a host, and
// following no redirect. A redirect is the connector's to follow or not:
// it comes back as the 3xx, and a hop is a request of its own, checked as
// any.
func NewClient(g *egress.Guard) *http.Client {
	t := newTransport(g.DialDirect)
	t.MaxIdleConnsPerHost = 8
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Exchange makes one request with c, a client of NewClient(g), within
// ctx. Before anything is dialled it checks the request (Check) and its
// host against g (nil refuses everything); header names go out as
// WireName gives them; at most limit bytes of the body are read.
func Exchange(ctx context.Context, c *http.Client, g *egress.Guard, method, rawURL string, header iter.Seq2[string, string], body []byte, limit int) (*Response, *Failure) {
	u, problem := Check(method, rawURL, header)
	if problem != "" {
		return nil, &Failure{Class: Invalid, Message: problem}
	}
	host := u.Hostname()
	if g == nil {
		return nil, &Failure{Class: Denied, Message: "egress to " + host + " refused: this host allows the connector no network access"}
	}
	if err := g.CheckHost(host); err != nil {
		f := &Failure{Class: Denied, Message: err.Error()}
		errors.As(err, &f.Denied)
		return nil, f
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, &Failure{Class: Invalid, Message: "bad request to " + host + ": " + err.Error()}
	}
	if len(body) == 0 {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	for name, value := range header {
		name = WireName(name)
		req.Header[name] = append(req.Header[name], value)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, classify(ctx, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, classify(ctx, host, err)
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if len(b) > limit {
		out.Body, out.Truncated = b[:limit], true
	}
	return out, nil
}

// NewTransport returns a transport whose every connection dials through g,
// which allows the hosts the manifest declares and checks each address
// dialled against the operator's policy. It takes no proxy from the
// environment and asks for no compression: a request leaves as the
// connector built it.
func NewTransport(g *egress.Guard) *http.Transport {
	return newTransport(g.DialContext)
}

func newTransport(dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		IdleConnTimeout:        60 * time.Second,
		DisableCompression:     true,
	}
}

// framing is what net/http writes itself, by the canonical name it looks
// for: a field named another way ("content-length") would go out beside
// its own, a second Content-Length or User-Agent.
var framing = map[string]bool{
	"Host": true, "User-Agent": true, "Content-Length": true,
	"Transfer-Encoding": true, "Trailer": true, "Connection": true,
}

// WireName is the name a header field is sent under: as the connector
// spelled it, but in canonical form for the fields net/http handles itself
// (see framing), so that it sets or drops them as it does for its own.
func WireName(name string) string {
	if c := textproto.CanonicalMIMEHeaderKey(name); framing[c] {
		return c
	}
	return name
}
