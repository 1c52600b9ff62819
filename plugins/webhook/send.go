package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
)

const (
	// requestTimeout bounds one delivery, from dialling to reading the
	// excerpt; the call's own deadline wins when it is sooner.
	requestTimeout = 10 * time.Second
	// ExcerptBytes caps body_excerpt; no more than a few bytes beyond it
	// are ever read from the response.
	ExcerptBytes = 1 << 10
	// maxRetryAfter caps the Retry-After delay passed on to the host.
	maxRetryAfter = 24 * time.Hour
)

func preview(ctx context.Context, req connector.Request[SendInput]) (any, error) {
	d, err := newDelivery(ctx, req)
	if err != nil {
		return nil, err
	}
	headers := map[string]string{"Content-Length": strconv.Itoa(len(d.body))}
	for name, values := range d.header(time.Now().Unix(), redacted) {
		headers[name] = values[0]
	}
	return Preview{Method: http.MethodPost, URL: d.url.String(), Headers: headers, Body: d.body, WebhookID: d.id}, nil
}

func send(ctx context.Context, req connector.Request[SendInput]) (SendOutput, error) {
	d, err := newDelivery(ctx, req)
	if err != nil {
		return SendOutput{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url.String(), bytes.NewReader(d.body))
	if err != nil {
		return SendOutput{}, connector.InvalidInput("url: %v", err)
	}
	timestamp := time.Now().Unix()
	hreq.Header = d.header(timestamp, sign(d.key, d.id, timestamp, d.body))

	client := newClient(d.guard)
	defer client.CloseIdleConnections() // after the body is closed
	start := time.Now()
	resp, err := client.Do(hreq)
	if err != nil {
		return SendOutput{}, d.transportError(ctx, err)
	}
	defer resp.Body.Close()
	excerpt, truncated, readErr := readExcerpt(resp.Body)
	elapsed := time.Since(start)

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		// Delivered: a failure while reading the answer's body does not
		// undo that, so it only shows as a truncated excerpt.
		return SendOutput{
			Status: code, BodyExcerpt: excerpt, BodyTruncated: truncated || readErr != nil,
			WebhookID: d.id, DurationMS: elapsed.Milliseconds(),
		}, nil
	case code >= 300 && code < 400:
		return SendOutput{}, connector.Permanent("webhook to %s: the receiver answered %s redirecting to %s; redirects are not followed",
			d.host, statusText(code), locationHost(d.url, resp.Header.Get("Location")))
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return SendOutput{}, connector.Retryable(retryAfter(resp.Header, time.Now()),
			"webhook to %s: the receiver answered %s%s", d.host, statusText(code), quoteExcerpt(excerpt))
	default:
		return SendOutput{}, connector.Permanent("webhook to %s: the receiver answered %s%s", d.host, statusText(code), quoteExcerpt(excerpt))
	}
}

// newClient returns a client for one delivery on the SDK's transport, which
// dials only through the guard natively and asks the host to make the
// request in a WASM module; either way it ignores proxy settings and asks
// for no compression (so the request is exactly what the preview shows).
// It never follows a redirect. The caller closes its idle connections when
// done.
func newClient(guard *egress.Guard) *http.Client {
	return &http.Client{
		Transport:     connector.HTTPTransport(guard),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// transportError classifies a failure to get an answer. The *url.Error from
// net/http is unwrapped because its message repeats the whole URL, which
// may carry a token; what it wraps, an *egress.DeniedError in particular,
// stays in the chain.
func (d *delivery) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		denied     *egress.DeniedError
		classified *connector.Error // from the host, in a WASM module
		cert       *tls.CertificateVerificationError
		dnsErr     *net.DNSError
	)
	switch {
	case errors.As(err, &denied):
		return fmt.Errorf("webhook to %s: %w", d.host, err)
	case errors.As(err, &classified) && ctx.Err() == nil:
		return &connector.Error{Code: classified.Code, Message: fmt.Sprintf("webhook to %s: %s", d.host, classified.Message), RetryAfter: classified.RetryAfter}
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		// The request may have arrived: a retry is still right, since it
		// carries the same webhook-id.
		return connector.Retryable(0, "webhook to %s: gave up waiting for an answer (%v); the receiver may have got it, and a retry carries the same webhook-id",
			d.host, context.Cause(ctx))
	case errors.As(err, &cert):
		return connector.Permanent("webhook to %s: %v", d.host, err)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return connector.Permanent("webhook to %s: no such host", d.host)
	default:
		return connector.Retryable(0, "webhook to %s: %v", d.host, err)
	}
}

// readExcerpt reads at most ExcerptBytes+utf8.UTFMax bytes of body and
// returns at most ExcerptBytes of valid UTF-8 from its start (invalid bytes
// become U+FFFD), and whether the body had more than that.
func readExcerpt(body io.Reader) (excerpt string, truncated bool, err error) {
	buf := make([]byte, ExcerptBytes+utf8.UTFMax)
	n, err := io.ReadFull(body, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	buf = buf[:n]
	var sb strings.Builder
	for i := 0; i < len(buf); {
		r, size := utf8.DecodeRune(buf[i:])
		if sb.Len()+utf8.RuneLen(r) > ExcerptBytes {
			return sb.String(), true, err
		}
		sb.WriteRune(r)
		i += size
	}
	// A full buffer always stops above (each byte read adds at least one
	// byte to the excerpt), so here the whole body was read.
	return sb.String(), false, err
}

func quoteExcerpt(s string) string {
	const max = 256
	if s == "" {
		return ""
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return ": " + strconv.Quote(s)
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// locationHost names where a redirect pointed, by host only: the path and
// query may carry tokens.
func locationHost(base *url.URL, location string) string {
	if location == "" {
		return "nowhere (no Location header)"
	}
	u, err := base.Parse(location)
	if err != nil || u.Host == "" {
		return "an unparsable Location"
	}
	return u.Host
}

// retryAfter reads Retry-After, in seconds or as an HTTP date; 0 when it is
// absent, unreadable or past.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}
