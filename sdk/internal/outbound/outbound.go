// Package outbound holds the rules an outbound HTTP request of a connector
// follows in both forms: the checks made before it is sent and the class
// of a failure to get an answer. The WASM host applies them to a module's
// relay.http_request; the SDK's Fetch applies them natively. One set of
// rules is what makes a connector fail the same way in either form.
package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	// Retryable: no answer in time, or a network failure; the request may
	// succeed later.
	Retryable
	// Permanent: the name does not resolve, or the server's certificate
	// does not verify; trying again will not help.
	Permanent
)

// Classify classifies err, the failure of a request to host made within
// ctx, and describes it. The *url.Error of net/http is unwrapped: its
// message repeats the whole URL. A Denied failure's message is the
// *egress.DeniedError's own.
func Classify(ctx context.Context, host string, err error) (Class, string) {
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
		return Denied, denied.Error()
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return Retryable, "request to " + host + ": no answer in time"
	case errors.As(err, &cert):
		return Permanent, "request to " + host + ": " + cert.Error()
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return Permanent, "request to " + host + ": no such host"
	default:
		return Retryable, "request to " + host + ": " + err.Error()
	}
}

// NewTransport returns a transport whose every connection dials through g,
// which allows the hosts the manifest declares and checks each address
// dialled against the operator's policy. It takes no proxy from the
// environment and asks for no compression: a request leaves as the
// connector built it.
func NewTransport(g *egress.Guard) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            g.DialContext,
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
