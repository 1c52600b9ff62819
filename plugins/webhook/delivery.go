package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
)

// MaxBodyBytes caps the request body (after compaction).
const MaxBodyBytes = 1 << 20

// redacted stands in for the signature in a preview.
const redacted = "v1,[REDACTED]"

// forbiddenHeaders are request headers a caller may not set: hop-by-hop
// headers, those net/http or this connector computes, and those that would
// change how the body is read. Names starting with "webhook-" are refused
// too. Lower case.
var forbiddenHeaders = map[string]bool{
	"connection":          true,
	"keep-alive":          true,
	"proxy-connection":    true,
	"proxy-authenticate":  true,
	"proxy-authorization": true,
	"te":                  true,
	"trailer":             true,
	"transfer-encoding":   true,
	"upgrade":             true,
	"host":                true,
	"content-length":      true,
	"content-type":        true,
	"content-encoding":    true,
	"expect":              true,
}

// delivery is one validated webhook request, before it is signed.
type delivery struct {
	url   *url.URL
	host  string // the URL's host name, for messages: the full URL may carry a token
	body  []byte
	extra connector.Header
	id    string
	key   []byte
	guard *egress.Guard
}

// newDelivery validates the input and the connection and checks the URL's
// host against the egress policy, without touching the network: a name is
// only compared with the declared egress; an address literal is also
// checked against the refused ranges. Names are resolved and checked at
// dial time.
func newDelivery(ctx context.Context, req connector.Request[SendInput]) (*delivery, error) {
	in := req.Input
	var problems []connector.FieldError
	u, err := parseURL(in.URL)
	if err != nil {
		problems = append(problems, connector.FieldError{Pointer: "/url", Message: err.Error()})
	}
	var body bytes.Buffer
	switch {
	case len(in.Body) == 0:
		problems = append(problems, connector.FieldError{Pointer: "/body", Message: "body is required"})
	case json.Compact(&body, in.Body) != nil:
		problems = append(problems, connector.FieldError{Pointer: "/body", Message: "body is not JSON"})
	case body.Len() > MaxBodyBytes:
		problems = append(problems, connector.FieldError{Pointer: "/body",
			Message: fmt.Sprintf("body is %d bytes; the limit is %d", body.Len(), MaxBodyBytes)})
	}
	extra, headerProblems := checkHeaders(in.Headers)
	problems = append(problems, headerProblems...)
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.Pointer + ": " + p.Message
		}
		return nil, &connector.Error{Code: connector.CodeInvalidInput, Message: strings.Join(msgs, "; "), Fields: problems}
	}

	key, err := connectionSecret(req.Connection)
	if err != nil {
		return nil, err
	}
	guard := req.Egress
	if guard == nil {
		guard = connector.EgressFromContext(ctx)
	}
	host := u.Hostname()
	if err := guard.CheckHost(host); err != nil {
		return nil, err
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if err := guard.CheckAddr(host, addr); err != nil {
			return nil, err
		}
	}
	return &delivery{
		url: u, host: host, body: body.Bytes(), extra: extra, key: key, guard: guard,
		id: webhookID(req.WorkspaceID, req.IdempotencyKey, req.RunID),
	}, nil
}

func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url does not parse")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		u.Scheme = strings.ToLower(u.Scheme)
	default:
		return nil, fmt.Errorf("url must be http or https")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, fmt.Errorf("url has no host")
	}
	if u.User != nil {
		return nil, fmt.Errorf("url must not carry credentials; send them in headers")
	}
	u.Fragment, u.RawFragment = "", "" // never sent
	return u, nil
}

// checkHeaders checks the caller's extra headers and returns them
// canonicalized.
func checkHeaders(headers map[string]string) (connector.Header, []connector.FieldError) {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	h := connector.Header{}
	var problems []connector.FieldError
	bad := func(name, msg string) {
		problems = append(problems, connector.FieldError{Pointer: "/headers/" + pointerEscape(name), Message: msg})
	}
	for _, name := range names {
		value := headers[name]
		lower := strings.ToLower(name)
		switch {
		case !isToken(name):
			bad(name, "not a valid header name")
		case forbiddenHeaders[lower] || strings.HasPrefix(lower, "webhook-"):
			bad(name, "this header may not be set")
		case !validHeaderValue(value):
			bad(name, "the value has control characters")
		case h.Get(name) != "":
			bad(name, "given twice (header names are case-insensitive)")
		default:
			h.Set(name, value)
		}
	}
	return h, problems
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than tab (CR and LF
// would split the header).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// webhookID derives the webhook-id from the workspace and the idempotency
// key, or the run id when there is no key: every attempt of one call sends
// the same id, so a receiver that remembers ids drops a redelivery, and two
// workspaces using the same key never collide.
func webhookID(workspaceID, idempotencyKey, runID string) string {
	var source string
	switch {
	case idempotencyKey != "":
		source = "key\x00" + idempotencyKey
	case runID != "":
		source = "run\x00" + runID
	default:
		return "msg_" + rand.Text()
	}
	sum := sha256.Sum256([]byte("relay webhook-id\x00" + workspaceID + "\x00" + source))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// header returns the request headers with the given timestamp and
// signature.
func (d *delivery) header(timestamp int64, signature string) connector.Header {
	h := d.extra.Clone()
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "Relay-Webhook/"+Version)
	}
	h.Set("Content-Type", "application/json")
	// Lower case, as the Standard Webhooks specification spells them.
	h["webhook-id"] = []string{d.id}
	h["webhook-timestamp"] = []string{strconv.FormatInt(timestamp, 10)}
	h["webhook-signature"] = []string{signature}
	return h
}
