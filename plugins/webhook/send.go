package webhook

import (
	"context"
	"errors"
	"fmt"
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
	// are ever read from the response. A response whose body breaks off
	// within them fails the delivery as retryable, in both forms (Fetch
	// reads them whole); a retry carries the same webhook-id.
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
	return Preview{Method: "POST", URL: d.url.String(), Headers: headers, Body: d.body, WebhookID: d.id}, nil
}

func send(ctx context.Context, req connector.Request[SendInput]) (SendOutput, error) {
	d, err := newDelivery(ctx, req)
	if err != nil {
		return SendOutput{}, err
	}
	timestamp := time.Now().Unix()
	start := time.Now()
	// Fetch dials only through the guard natively and asks the host to make
	// the request in a WASM module; either way it takes no proxy settings
	// and asks for no compression, so the request is exactly what the
	// preview shows. It follows no redirect.
	resp, err := req.Fetch(ctx, &connector.HTTPRequest{
		Method: "POST", URL: d.url.String(), Body: d.body,
		Header:          d.header(timestamp, sign(d.key, d.id, timestamp, d.body)),
		Timeout:         requestTimeout,
		MaxResponseBody: ExcerptBytes + utf8.UTFMax,
	})
	if err != nil {
		return SendOutput{}, d.transportError(ctx, err)
	}
	excerpt, truncated := excerptOf(resp.Body, resp.Truncated)
	elapsed := time.Since(start)

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return SendOutput{
			Status: code, BodyExcerpt: excerpt, BodyTruncated: truncated,
			WebhookID: d.id, DurationMS: elapsed.Milliseconds(),
		}, nil
	case code >= 300 && code < 400:
		return SendOutput{}, connector.Permanent("webhook to %s: the receiver answered %s redirecting to %s; redirects are not followed",
			d.host, statusText(code), locationHost(d.url, resp.Header.Get("Location")))
	case code == 408 || code == 429 || code >= 500:
		return SendOutput{}, connector.Retryable(retryAfter(resp.Header, time.Now()),
			"webhook to %s: the receiver answered %s%s", d.host, statusText(code), quoteExcerpt(excerpt))
	default:
		return SendOutput{}, connector.Permanent("webhook to %s: the receiver answered %s%s", d.host, statusText(code), quoteExcerpt(excerpt))
	}
}

// transportError words a failure to get an answer for this delivery.
// Fetch has classified it, as the WASM host does: an *egress.DeniedError,
// a *connector.Error, or the call's context's error.
func (d *delivery) transportError(ctx context.Context, err error) error {
	var (
		denied     *egress.DeniedError
		classified *connector.Error
	)
	switch {
	case errors.As(err, &denied):
		return fmt.Errorf("webhook to %s: %w", d.host, err)
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		// The request may have arrived: a retry is still right, since it
		// carries the same webhook-id.
		return connector.Retryable(0, "webhook to %s: gave up waiting for an answer (%v); the receiver may have got it, and a retry carries the same webhook-id",
			d.host, err)
	case errors.As(err, &classified):
		msg := "webhook to " + d.host + ": " + classified.Message
		if classified.Code == connector.CodeRetryable {
			msg += "; a retry carries the same webhook-id"
		}
		return &connector.Error{Code: classified.Code, Message: msg, RetryAfter: classified.RetryAfter}
	default:
		return connector.Retryable(0, "webhook to %s: %v", d.host, err)
	}
}

// excerptOf returns at most ExcerptBytes of valid UTF-8 from the start of
// body (invalid bytes become U+FFFD), and whether the body had more than
// that: more bytes than the excerpt holds, or cut is set (Fetch read no
// further).
func excerptOf(body []byte, cut bool) (excerpt string, truncated bool) {
	var sb strings.Builder
	for i := 0; i < len(body); {
		r, size := utf8.DecodeRune(body[i:])
		if sb.Len()+utf8.RuneLen(r) > ExcerptBytes {
			return sb.String(), true
		}
		sb.WriteRune(r)
		i += size
	}
	return sb.String(), cut
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
	return "HTTP " + strconv.Itoa(code)
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
func retryAfter(h connector.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second
	} else if t, ok := parseHTTPDate(v); ok {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// parseHTTPDate reads an HTTP date in any of the three forms RFC 9110
// allows a recipient to meet: IMF-fixdate, RFC 850's and asctime's.
func parseHTTPDate(v string) (time.Time, bool) {
	for _, layout := range []string{
		"Mon, 02 Jan 2006 15:04:05 GMT",
		"Monday, 02-Jan-06 15:04:05 GMT",
		"Mon Jan _2 15:04:05 2006",
	} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
