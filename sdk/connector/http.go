package connector

import (
	"context"
	"iter"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

// Outbound HTTP. Fetch makes a request in either form: natively it dials
// through the call's egress guard; built for wasip1, where a module opens
// no sockets, it hands the request to the host (the relay.http_request
// host function), which applies the same policy. Fetch does not use
// net/http's types, so a module built with the SDK does not link net/http,
// crypto/tls and the certificate code: a smaller module, which the host
// compiles and loads faster. A connector that needs an *http.Client, such
// as one built on another library's API client, takes it from package
// sdk/connector/nethttp.

// DefaultMaxResponseBody is how much of a response body Fetch reads when
// HTTPRequest.MaxResponseBody is 0: 1 MiB, the WASM host's default cap.
const DefaultMaxResponseBody = 1 << 20

// maxRedirects caps HTTPRequest.MaxRedirects.
const maxRedirects = 10

// HTTPRequest is an outbound request for Fetch.
type HTTPRequest struct {
	Method string // "" is GET
	URL    string // absolute http or https, without user info
	Header Header
	Body   []byte
	// Timeout bounds the whole exchange, redirects included; 0 leaves
	// only the call's deadline.
	Timeout time.Duration
	// MaxRedirects is how many redirects Fetch follows, each a request of
	// its own through the same egress policy (at most 10). With 0 it
	// follows none: a 3xx comes back as the response. Past the last one
	// allowed, the last 3xx comes back.
	MaxRedirects int
	// MaxResponseBody caps the body read (0: DefaultMaxResponseBody). In
	// a WASM module, the host's own cap applies too.
	MaxResponseBody int
}

// HTTPResponse is Fetch's answer: the status, the headers and the body,
// read whole.
type HTTPResponse struct {
	StatusCode int
	Header     Header
	Body       []byte
	// Truncated says the body was longer than the cap; Body holds its
	// start.
	Truncated bool
	// URL is where the response came from: the request's URL, or the last
	// redirect's.
	URL string
}

// Header is a set of HTTP header fields, keyed by canonical name
// ("Content-Type") as net/http's Header is. Set and read it through its
// methods, or assign a key directly to send a name as written (but for
// Content-Length, Transfer-Encoding, Trailer, Connection and User-Agent,
// which the client writes itself under their canonical names).
type Header map[string][]string

// Get returns the first value of the field, or "".
func (h Header) Get(name string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of the field.
func (h Header) Values(name string) []string {
	return h[textproto.CanonicalMIMEHeaderKey(name)]
}

// Set replaces the field's values with value.
func (h Header) Set(name, value string) {
	h[textproto.CanonicalMIMEHeaderKey(name)] = []string{value}
}

// Add appends value to the field's values.
func (h Header) Add(name, value string) {
	k := textproto.CanonicalMIMEHeaderKey(name)
	h[k] = append(h[k], value)
}

// Del removes the field.
func (h Header) Del(name string) {
	delete(h, textproto.CanonicalMIMEHeaderKey(name))
}

// Clone returns a deep copy; nil for nil.
func (h Header) Clone() Header {
	if h == nil {
		return nil
	}
	out := make(Header, len(h))
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Fetch makes req with the egress policy of the call ctx belongs to (see
// EgressFromContext). Failures keep their class in both forms: a refused
// host or address is an *egress.DeniedError; a network failure, or no
// answer within the Timeout, a CodeRetryable *Error (a certificate the
// server's name does not verify, or a name that does not resolve, a
// CodePermanent one); a request whose context is done fails with the
// context's error. Any status is a response, not an error. Messages name
// the host, never the whole URL, which may carry a token.
func Fetch(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
	return fetch(ctx, EgressFromContext(ctx), TraceParentFromContext(ctx), req)
}

// Fetch makes req with the call's egress policy (r.Egress, or the
// context's when that is nil); see the package function Fetch.
func (r Request[In]) Fetch(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
	g := r.Egress
	if g == nil {
		g = EgressFromContext(ctx)
	}
	tp := r.TraceParent
	if tp == "" {
		tp = TraceParentFromContext(ctx)
	}
	return fetch(ctx, g, tp, req)
}

// fetch makes req and follows its redirects; traceParent, when not "",
// goes with each hop unless the request has its own.
func fetch(ctx context.Context, g *egress.Guard, traceParent string, req *HTTPRequest) (*HTTPResponse, error) {
	parent := ctx
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	limit := req.MaxResponseBody
	if limit <= 0 {
		limit = DefaultMaxResponseBody
	}
	hop := *req
	if hop.Method == "" {
		hop.Method = "GET"
	}
	if traceParent != "" && req.Header.Get("Traceparent") == "" {
		hop.Header = req.Header.Clone()
		if hop.Header == nil {
			hop.Header = Header{}
		}
		hop.Header.Set("Traceparent", traceParent)
	}
	for n := 0; ; n++ {
		resp, err := exchange(ctx, g, &hop, limit)
		if err != nil {
			if cerr := done(parent); cerr != nil {
				return nil, cerr // the caller gave up: that is the failure
			}
			return nil, err
		}
		resp.URL = hop.URL
		if n >= min(req.MaxRedirects, maxRedirects) {
			return resp, nil
		}
		next, ok := redirect(&hop, resp)
		if !ok {
			return resp, nil
		}
		hop = *next
	}
}

// done is the error of a context that is done: its Err, or
// DeadlineExceeded once its deadline has passed. In a WASM module the
// context's timer may not have fired yet when the host gave up at that
// deadline: the module ran nothing while the host worked.
func done(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// redirect returns the request that follows resp, a response to req, and
// whether there is one: resp is a redirect with a Location. As browsers
// and net/http do, a 301, 302 or 303 to a request other than GET or HEAD
// becomes a GET without the body; a 307 or 308 repeats the method and
// the body. Credentials (Authorization, Cookie) go only to the same host.
func redirect(req *HTTPRequest, resp *HTTPResponse) (*HTTPRequest, bool) {
	switch resp.StatusCode {
	case 301, 302, 303, 307, 308:
	default:
		return nil, false
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, false
	}
	base, err := url.Parse(req.URL)
	if err != nil {
		return nil, false
	}
	to, err := base.Parse(loc)
	if err != nil {
		return nil, false
	}
	if (to.Scheme != "http" && to.Scheme != "https") || to.Host == "" {
		return nil, false // not somewhere Fetch goes: the 3xx is the answer
	}
	to.Fragment, to.RawFragment = "", ""
	next := *req
	next.URL = to.String()
	next.Header = req.Header.Clone()
	if resp.StatusCode < 307 && req.Method != "GET" && req.Method != "HEAD" {
		next.Method, next.Body = "GET", nil
		next.Header.Del("Content-Type")
		next.Header.Del("Content-Length")
	}
	if !strings.EqualFold(to.Hostname(), base.Hostname()) {
		for _, k := range []string{"Authorization", "Cookie", "Cookie2", "Proxy-Authorization"} {
			next.Header.Del(k)
		}
	}
	return &next, true
}

// fields lists every field as sent.
func (h Header) fields() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for name, values := range h {
			for _, v := range values {
				if !yield(name, v) {
					return
				}
			}
		}
	}
}

// hostFailure is the error of a request that the host answered with e
// instead of a response (a WASM module's relay.http_request, a sandboxed
// native connector's Host.Fetch): a refusal is rebuilt as the
// *egress.DeniedError that a connector dialling itself gets.
func hostFailure(rawURL string, e *Error) error {
	if e.Code == CodeEgressDenied {
		return egress.DeniedFromMessage(hostOf(rawURL), e.Message)
	}
	out := &Error{Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter}
	if out.Code == 0 {
		out.Code = CodeInternal
	}
	return out
}

// hostOf is the host name of a request's URL, as the host names it.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
