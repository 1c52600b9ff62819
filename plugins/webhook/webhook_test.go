package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relayhq/relay/plugins/webhook"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// testKey is the signing key; testSecret is how a connection stores it.
var (
	testKey    = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	testSecret = "whsec_" + base64.StdEncoding.EncodeToString(testKey)
)

// newServer serves the webhook connector in process, as the plugin binary
// would. With allowLoopback the operator allows 127.0.0.1/32, as the host
// does through RELAY_EGRESS_ALLOW.
func newServer(t *testing.T, allowLoopback bool) *connector.Server {
	t.Helper()
	allow := ""
	if allowLoopback {
		allow = "127.0.0.1/32"
	}
	t.Setenv(protocol.EnvEgressAllow, allow)
	s, err := connector.NewServer(webhook.New(), "native")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// received is one request a sink got.
type received struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// sink is a real HTTP receiver on 127.0.0.1 that records every request and
// answers with respond.
type sink struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newSink(t *testing.T, respond http.HandlerFunc) *sink {
	t.Helper()
	s := &sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, received{r.Method, r.URL.Path, r.Header.Clone(), body})
		s.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.reqs...)
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// call is one action request; zero fields get defaults.
type call struct {
	input          any // encoded with encoding/json, unless it is a json.RawMessage
	secret         *string
	runID, key, ws string
	ctx            context.Context
}

func (c call) request(t *testing.T) *connectorv1.ActionRequest {
	t.Helper()
	input, isRaw := c.input.(json.RawMessage)
	if !isRaw {
		var err error
		if input, err = json.Marshal(c.input); err != nil {
			t.Fatal(err)
		}
	}
	secret := testSecret
	if c.secret != nil {
		secret = *c.secret
	}
	ws := c.ws
	if ws == "" {
		ws = "ws_1"
	}
	return &connectorv1.ActionRequest{
		Action: "send", InputJson: input, RunId: c.runID, IdempotencyKey: c.key, WorkspaceId: ws,
		Connection: &connectorv1.Connection{Secrets: map[string]string{"signing_secret": secret}},
	}
}

func (c call) context() (context.Context, context.CancelFunc) {
	if c.ctx != nil {
		return c.ctx, func() {}
	}
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func execute(t *testing.T, s *connector.Server, c call) (webhook.SendOutput, *connectorv1.Error) {
	t.Helper()
	ctx, cancel := c.context()
	defer cancel()
	resp, err := s.Execute(ctx, c.request(t))
	if err != nil {
		t.Fatalf("Execute: transport error %v", err)
	}
	var out webhook.SendOutput
	if resp.GetError() == nil {
		if err := json.Unmarshal(resp.GetOutputJson(), &out); err != nil {
			t.Fatalf("output %s: %v", resp.GetOutputJson(), err)
		}
	}
	return out, resp.GetError()
}

func preview(t *testing.T, s *connector.Server, c call) ([]byte, *connectorv1.Error) {
	t.Helper()
	ctx, cancel := c.context()
	defer cancel()
	resp, err := s.Preview(ctx, c.request(t))
	if err != nil {
		t.Fatalf("Preview: transport error %v", err)
	}
	return resp.GetPreviewJson(), resp.GetError()
}

func mustSucceed(t *testing.T, perr *connectorv1.Error) {
	t.Helper()
	if perr != nil {
		t.Fatalf("error %s: %s", perr.GetCode(), perr.GetMessage())
	}
}

func wantCode(t *testing.T, perr *connectorv1.Error, code connectorv1.ErrorCode) {
	t.Helper()
	if perr == nil {
		t.Fatalf("succeeded; want %s", code)
	}
	if perr.GetCode() != code {
		t.Fatalf("error %s: %s; want %s", perr.GetCode(), perr.GetMessage(), code)
	}
}

// verify checks a Standard Webhooks signature the way a receiver would,
// independently of the connector's code.
func verify(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	var ok bool
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		ok = ok || hmac.Equal([]byte(sig), []byte(want))
	}
	if !ok {
		t.Fatalf("webhook-signature %q does not verify (want %q)", h.Get("webhook-signature"), want)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", ts, err)
	}
	if d := time.Since(time.Unix(sec, 0)); d < -time.Minute || d > time.Minute {
		t.Fatalf("webhook-timestamp %s is %v away from now", ts, d)
	}
}

var idPattern = regexp.MustCompile(`^msg_[0-9a-f]{32}$`)

func TestSendSignedDelivery(t *testing.T) {
	s := newServer(t, true)
	sk := newSink(t, answer(http.StatusOK, `{"ok":true}`))
	body := `{"event": "invoice.paid",
	  "data": {"id": "in_1", "amount": 4200, "note": "caf\u00e9 <b>&</b> ü 😀", "list": [1, 2.5e3, null, true]}}`
	input := `{"url": "` + sk.URL + `/hooks?x=1", "body": ` + body + `,
	  "headers": {"X-Trace": "abc", "authorization": "Bearer t"}}`
	out, perr := execute(t, s, call{input: json.RawMessage(input), runID: "run_1", key: "key_1"})
	mustSucceed(t, perr)

	reqs := sk.requests()
	if len(reqs) != 1 {
		t.Fatalf("the sink got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	var compact bytes.Buffer
	json.Compact(&compact, []byte(body))
	if r.method != http.MethodPost || r.path != "/hooks" {
		t.Errorf("got %s %s", r.method, r.path)
	}
	if !bytes.Equal(r.body, compact.Bytes()) {
		t.Errorf("body = %s, want %s", r.body, compact.Bytes())
	}
	verify(t, testSecret, r.header, r.body)
	for name, want := range map[string]string{
		"Content-Type":  "application/json",
		"X-Trace":       "abc",
		"Authorization": "Bearer t",
		"User-Agent":    "Relay-Webhook/" + webhook.Version,
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(compact.Bytes())) {
		t.Errorf("Content-Length = %q", got)
	}
	if id := r.header.Get("webhook-id"); !idPattern.MatchString(id) || id != out.WebhookID {
		t.Errorf("webhook-id %q, output webhook_id %q", id, out.WebhookID)
	}
	if out.Status != http.StatusOK || out.BodyExcerpt != `{"ok":true}` || out.BodyTruncated || out.DurationMS < 0 {
		t.Errorf("output = %+v", out)
	}
}

func TestWebhookIDIsStablePerCall(t *testing.T) {
	s := newServer(t, true)
	sk := newSink(t, answer(http.StatusNoContent, ""))
	in := map[string]any{"url": sk.URL, "body": map[string]any{"n": 1}}
	id := func(c call) string {
		t.Helper()
		c.input = in
		out, perr := execute(t, s, c)
		mustSucceed(t, perr)
		return out.WebhookID
	}
	first := id(call{key: "k1", runID: "run_a"})
	if again := id(call{key: "k1", runID: "run_b"}); again != first {
		t.Errorf("same idempotency key: ids %s and %s differ", first, again)
	}
	if other := id(call{key: "k2", runID: "run_a"}); other == first {
		t.Error("another idempotency key gave the same id")
	}
	if other := id(call{key: "k1", ws: "ws_2"}); other == first {
		t.Error("another workspace with the same key gave the same id")
	}
	byRun := id(call{runID: "run_a"})
	if again := id(call{runID: "run_a"}); again != byRun || byRun == first {
		t.Errorf("ids by run: %s, %s (by key %s)", byRun, again, first)
	}
	// Each attempt is signed afresh and verifies.
	for _, r := range sk.requests() {
		verify(t, testSecret, r.header, r.body)
	}
}

func TestLoopbackNeedsOperatorAllow(t *testing.T) {
	sk := newSink(t, answer(http.StatusOK, "ok"))
	_, port, _ := net.SplitHostPort(sk.Listener.Addr().String())
	for _, u := range []string{sk.URL, "http://localhost:" + port + "/"} {
		t.Run(u, func(t *testing.T) {
			before := len(sk.requests())
			_, perr := execute(t, newServer(t, false), call{input: map[string]any{"url": u, "body": "x"}})
			wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED)
			if !strings.Contains(perr.GetMessage(), "loopback") {
				t.Errorf("message %q does not say loopback", perr.GetMessage())
			}
			if n := len(sk.requests()) - before; n != 0 {
				t.Fatalf("the sink got %d requests", n)
			}
			out, perr := execute(t, newServer(t, true), call{input: map[string]any{"url": u, "body": "x"}})
			mustSucceed(t, perr)
			if out.Status != 200 || len(sk.requests())-before != 1 {
				t.Fatalf("output %+v, sink got %d", out, len(sk.requests())-before)
			}
		})
	}
}

func TestSpecialTargetsRefused(t *testing.T) {
	s := newServer(t, true)
	for _, target := range []string{
		"http://169.254.169.254/latest/meta-data",
		"http://10.0.0.1/",
		"https://10.0.0.1:8443/x",
		"http://[fd00:ec2::254]/",
		"http://[::ffff:169.254.169.254]/",
		"http://[::ffff:10.0.0.1]/",
		"http://[fe80::1%25lo]/",
		"http://100.64.0.1/",
		"http://[::1]/",
		"http://0.0.0.0/",
	} {
		t.Run(target, func(t *testing.T) {
			// A connection attempt to these would time out or be refused
			// (RETRYABLE); EGRESS_DENIED means none was made.
			_, perr := execute(t, s, call{input: map[string]any{"url": target, "body": 1}})
			wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED)
			_, perr = preview(t, s, call{input: map[string]any{"url": target, "body": 1}})
			wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED)
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	s := newServer(t, true)
	t.Run("to metadata", func(t *testing.T) {
		sk := newSink(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data?token=s3cr3t", http.StatusFound)
		})
		_, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}})
		wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
		msg := perr.GetMessage()
		if !strings.Contains(msg, "302") || !strings.Contains(msg, "169.254.169.254") {
			t.Errorf("message %q should name the status and the Location host", msg)
		}
		if strings.Contains(msg, "meta-data") || strings.Contains(msg, "s3cr3t") {
			t.Errorf("message %q repeats the Location's path or query", msg)
		}
		if n := len(sk.requests()); n != 1 {
			t.Errorf("the sink got %d requests, want 1", n)
		}
	})
	t.Run("to an allowed local URL", func(t *testing.T) {
		target := newSink(t, answer(http.StatusOK, "ok"))
		for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			sk := newSink(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/next", status)
			})
			_, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}})
			wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
			host := strings.TrimPrefix(target.URL, "http://")
			if !strings.Contains(perr.GetMessage(), strconv.Itoa(status)) || !strings.Contains(perr.GetMessage(), host) {
				t.Errorf("message %q should name %d and %s", perr.GetMessage(), status, host)
			}
		}
		if n := len(target.requests()); n != 0 {
			t.Fatalf("the redirect target got %d requests", n)
		}
	})
}

func TestStatusClassification(t *testing.T) {
	s := newServer(t, true)
	tests := []struct {
		status       int
		retryAfter   string
		code         connectorv1.ErrorCode // unspecified: success
		retryAfterMs int64
	}{
		{http.StatusOK, "", 0, 0},
		{http.StatusAccepted, "", 0, 0},
		{http.StatusNoContent, "", 0, 0},
		{http.StatusInternalServerError, "", connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, 0},
		{http.StatusBadGateway, "", connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, 0},
		{http.StatusServiceUnavailable, "7", connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, 7000},
		{http.StatusTooManyRequests, "3", connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, 3000},
		{http.StatusTooManyRequests, "soon", connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, 0},
		{http.StatusRequestTimeout, "", connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, 0},
		{http.StatusNotFound, "", connectorv1.ErrorCode_ERROR_CODE_PERMANENT, 0},
		{http.StatusBadRequest, "", connectorv1.ErrorCode_ERROR_CODE_PERMANENT, 0},
		{http.StatusUnauthorized, "", connectorv1.ErrorCode_ERROR_CODE_PERMANENT, 0},
		{http.StatusGone, "", connectorv1.ErrorCode_ERROR_CODE_PERMANENT, 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+tt.retryAfter, func(t *testing.T) {
			sk := newSink(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				if tt.status != http.StatusNoContent {
					io.WriteString(w, "answer body")
				}
			})
			out, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}})
			if tt.code == 0 {
				mustSucceed(t, perr)
				if out.Status != tt.status {
					t.Errorf("status %d, want %d", out.Status, tt.status)
				}
				return
			}
			wantCode(t, perr, tt.code)
			if perr.GetRetryAfterMs() != tt.retryAfterMs {
				t.Errorf("retry_after_ms %d, want %d", perr.GetRetryAfterMs(), tt.retryAfterMs)
			}
			if !strings.Contains(perr.GetMessage(), strconv.Itoa(tt.status)) || !strings.Contains(perr.GetMessage(), "answer body") {
				t.Errorf("message %q should carry the status and the answer", perr.GetMessage())
			}
		})
	}
}

func TestPreviewSendsNothing(t *testing.T) {
	s := newServer(t, true)
	sk := newSink(t, answer(http.StatusOK, "ok"))
	body := map[string]any{"event": "x", "n": 2}
	raw, perr := preview(t, s, call{
		input: map[string]any{"url": sk.URL + "/p#frag", "body": body, "headers": map[string]string{"x-trace": "t1"}},
		key:   "k1",
	})
	mustSucceed(t, perr)
	if n := len(sk.requests()); n != 0 {
		t.Fatalf("preview sent %d requests", n)
	}
	var p webhook.Preview
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if p.Method != "POST" || p.URL != sk.URL+"/p" {
		t.Errorf("method %s url %s", p.Method, p.URL)
	}
	if string(p.Body) != `{"event":"x","n":2}` {
		t.Errorf("body %s", p.Body)
	}
	for name, want := range map[string]string{
		"Content-Type":      "application/json",
		"Content-Length":    strconv.Itoa(len(`{"event":"x","n":2}`)),
		"X-Trace":           "t1",
		"User-Agent":        "Relay-Webhook/" + webhook.Version,
		"webhook-id":        p.WebhookID,
		"webhook-signature": "v1,[REDACTED]",
	} {
		if got := p.Headers[name]; got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if _, err := strconv.ParseInt(p.Headers["webhook-timestamp"], 10, 64); err != nil {
		t.Errorf("webhook-timestamp %q", p.Headers["webhook-timestamp"])
	}
	if !idPattern.MatchString(p.WebhookID) {
		t.Errorf("webhook_id %q", p.WebhookID)
	}
	// Neither the secret nor the key, in any spelling, nor a real signature.
	b64 := strings.TrimPrefix(testSecret, "whsec_")
	for _, leak := range []string{testSecret, b64, strings.TrimRight(b64, "="), string(testKey)} {
		if bytes.Contains(raw, []byte(leak)) {
			t.Errorf("the preview contains the secret (%q): %s", leak, raw)
		}
	}
	if bytes.Contains(raw, []byte("v1,")) && !bytes.Contains(raw, []byte(`"v1,[REDACTED]"`)) {
		t.Errorf("the preview contains a signature: %s", raw)
	}

	// The executed request matches the preview, but for timestamp and signature.
	_, perr = execute(t, s, call{input: map[string]any{"url": sk.URL + "/p#frag", "body": body, "headers": map[string]string{"x-trace": "t1"}}, key: "k1"})
	mustSucceed(t, perr)
	r := sk.requests()[0]
	if string(r.body) != string(p.Body) || r.header.Get("webhook-id") != p.WebhookID || r.path != "/p" {
		t.Errorf("sent %s %s id %s; previewed %s id %s", r.path, r.body, r.header.Get("webhook-id"), p.Body, p.WebhookID)
	}
	for name, values := range r.header {
		if name == "Webhook-Timestamp" || name == "Webhook-Signature" {
			continue
		}
		if p.Headers[name] != values[0] && p.Headers[strings.ToLower(name)] != values[0] {
			t.Errorf("sent header %s: %q, not in the preview", name, values[0])
		}
	}
}

func TestBadInput(t *testing.T) {
	s := newServer(t, true)
	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		input   any
		secret  *string
		pointer string
	}{
		{"missing url", map[string]any{"body": 1}, nil, ""},
		{"empty url", map[string]any{"url": "", "body": 1}, nil, ""},
		{"ftp url", map[string]any{"url": "ftp://example.com/x", "body": 1}, nil, "/url"},
		{"file url", map[string]any{"url": "file:///etc/passwd", "body": 1}, nil, "/url"},
		{"relative url", map[string]any{"url": "/hooks", "body": 1}, nil, "/url"},
		{"opaque url", map[string]any{"url": "http:example.com", "body": 1}, nil, "/url"},
		{"url with credentials", map[string]any{"url": "https://u:p@example.com/", "body": 1}, nil, "/url"},
		{"unparsable url", map[string]any{"url": "http://exa mple.com/%zz", "body": 1}, nil, "/url"},
		{"missing body", map[string]any{"url": "https://example.com/"}, nil, ""},
		{"body over 1 MiB", map[string]any{"url": "https://example.com/", "body": strings.Repeat("a", webhook.MaxBodyBytes)}, nil, "/body"},
		{"unknown field", map[string]any{"url": "https://example.com/", "body": 1, "method": "GET"}, nil, ""},
		{"headers not strings", map[string]any{"url": "https://example.com/", "body": 1, "headers": map[string]any{"X-N": 1}}, nil, ""},
		{"bad header name", map[string]any{"url": "https://example.com/", "body": 1, "headers": map[string]string{"X Bad": "v"}}, nil, ""},
		{"header value with CRLF", map[string]any{"url": "https://example.com/", "body": 1, "headers": map[string]string{"X-A": "v\r\nX-Injected: 1"}}, nil, "/headers/X-A"},
		{"duplicate header", map[string]any{"url": "https://example.com/", "body": 1, "headers": map[string]string{"X-A": "1", "x-a": "2"}}, nil, "/headers/x-a"},
		{"bad secret", map[string]any{"url": "https://example.com/", "body": 1}, str("whsec_not*base64"), "/signing_secret"},
		{"short secret", map[string]any{"url": "https://example.com/", "body": 1}, str("whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))), "/signing_secret"},
		{"secret without prefix", map[string]any{"url": "https://example.com/", "body": 1}, str(base64.StdEncoding.EncodeToString(testKey)), "/signing_secret"},
		{"no secret", map[string]any{"url": "https://example.com/", "body": 1}, str(""), "/signing_secret"},
	}
	for _, name := range []string{
		"Host", "Content-Length", "content-type", "Content-Encoding", "Connection", "Keep-Alive", "Proxy-Authorization",
		"TE", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "webhook-id", "Webhook-Signature", "WEBHOOK-TIMESTAMP", "webhook-other",
	} {
		tests = append(tests, struct {
			name    string
			input   any
			secret  *string
			pointer string
		}{"header " + name, map[string]any{"url": "https://example.com/", "body": 1, "headers": map[string]string{name: "v"}}, nil, "/headers/" + name})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for what, run := range map[string]func(*testing.T, *connector.Server, call) *connectorv1.Error{
				"execute": func(t *testing.T, s *connector.Server, c call) *connectorv1.Error { _, e := execute(t, s, c); return e },
				"preview": func(t *testing.T, s *connector.Server, c call) *connectorv1.Error { _, e := preview(t, s, c); return e },
			} {
				perr := run(t, s, call{input: tt.input, secret: tt.secret})
				wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT)
				if tt.pointer != "" {
					var pointers []string
					for _, f := range perr.GetFields() {
						pointers = append(pointers, f.GetPointer())
					}
					if !strings.Contains(strings.Join(pointers, " "), tt.pointer) {
						t.Errorf("%s: fields %v, want %s (%s)", what, pointers, tt.pointer, perr.GetMessage())
					}
				}
				if tt.secret != nil && len(*tt.secret) > 8 && strings.Contains(perr.GetMessage(), strings.TrimPrefix(*tt.secret, "whsec_")) {
					t.Errorf("%s: the message repeats the secret: %s", what, perr.GetMessage())
				}
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	s := newServer(t, false)
	for _, tt := range []struct {
		secret string
		ok     bool
	}{
		{testSecret, true},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(testKey[:30]), true}, // unpadded
		{" " + testSecret + "\n", true},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)), true},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), false},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), false},
		{"whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 30)), false},
		{strings.TrimPrefix(testSecret, "whsec_"), false},
		{"", false},
	} {
		secret, ok := tt.secret, tt.ok
		resp, err := s.CheckConfig(context.Background(), &connectorv1.CheckConfigRequest{
			Connection: &connectorv1.Connection{Secrets: map[string]string{"signing_secret": secret}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if (resp.GetError() == nil) != ok {
			t.Errorf("CheckConfig(%q) = %v; want ok %v", secret, resp.GetError(), ok)
		}
		if e := resp.GetError(); e != nil && e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT {
			t.Errorf("CheckConfig(%q) code %s", secret, e.GetCode())
		}
	}
}

func TestSlowSinkPastDeadline(t *testing.T) {
	s := newServer(t, true)
	release := make(chan struct{})
	sk := newSink(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the sink's Close
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}, ctx: ctx})
	// The sink is still holding the request: the call returned on its
	// deadline, not on an answer.
	wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_RETRYABLE)
	if !strings.Contains(perr.GetMessage(), "deadline") {
		t.Errorf("message %q does not mention the deadline", perr.GetMessage())
	}
	if strings.Contains(perr.GetMessage(), sk.URL) {
		t.Errorf("message %q repeats the URL", perr.GetMessage())
	}
}

func TestResponseExcerptIsBounded(t *testing.T) {
	s := newServer(t, true)
	t.Run("endless body", func(t *testing.T) {
		// The call can only return if the connector stops reading.
		sk := newSink(t, func(w http.ResponseWriter, _ *http.Request) {
			chunk := bytes.Repeat([]byte("é"), 4096)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		out, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}})
		mustSucceed(t, perr)
		if len(out.BodyExcerpt) > webhook.ExcerptBytes || len(out.BodyExcerpt) < webhook.ExcerptBytes-utf8.UTFMax ||
			!utf8.ValidString(out.BodyExcerpt) || !out.BodyTruncated {
			t.Errorf("excerpt %d bytes, valid %v, truncated %v", len(out.BodyExcerpt), utf8.ValidString(out.BodyExcerpt), out.BodyTruncated)
		}
	})
	t.Run("invalid UTF-8 and a rune across the limit", func(t *testing.T) {
		body := append([]byte{0xff, 0xfe}, bytes.Repeat([]byte("a"), webhook.ExcerptBytes-4)...)
		body = append(body, "€€"...)
		sk := newSink(t, func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })
		out, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}})
		mustSucceed(t, perr)
		if len(out.BodyExcerpt) > webhook.ExcerptBytes || !utf8.ValidString(out.BodyExcerpt) || !out.BodyTruncated ||
			!strings.HasPrefix(out.BodyExcerpt, "\uFFFD\uFFFD") {
			t.Errorf("excerpt %d bytes %q…, valid %v, truncated %v", len(out.BodyExcerpt), out.BodyExcerpt[:8], utf8.ValidString(out.BodyExcerpt), out.BodyTruncated)
		}
	})
	t.Run("short body", func(t *testing.T) {
		sk := newSink(t, answer(http.StatusOK, "fine"))
		out, perr := execute(t, s, call{input: map[string]any{"url": sk.URL, "body": 1}})
		mustSucceed(t, perr)
		if out.BodyExcerpt != "fine" || out.BodyTruncated {
			t.Errorf("output %+v", out)
		}
	})
}

func TestUnreachableReceiverIsRetryable(t *testing.T) {
	s := newServer(t, true)
	sk := newSink(t, answer(http.StatusOK, ""))
	u, _ := url.Parse(sk.URL)
	sk.Close() // nothing listens on the port any more
	_, perr := execute(t, s, call{input: map[string]any{"url": "http://" + u.Host + "/", "body": 1}})
	wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_RETRYABLE)
}

func TestManifest(t *testing.T) {
	s := newServer(t, false)
	var m struct {
		Name, Version string
		Egress        []string
		ConfigSchema  struct {
			Properties map[string]map[string]any
		} `json:"config_schema"`
		Actions []struct {
			Name       string
			SideEffect string `json:"side_effect"`
			Idempotent bool
		}
	}
	if err := json.Unmarshal(s.Manifest(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "webhook" || m.Version != "1.0.0" || len(m.Egress) != 1 || m.Egress[0] != "*" {
		t.Errorf("manifest %s", s.Manifest())
	}
	if m.ConfigSchema.Properties["signing_secret"]["x-relay-secret"] != true {
		t.Errorf("signing_secret is not marked secret: %v", m.ConfigSchema.Properties)
	}
	if len(m.Actions) != 1 || m.Actions[0].Name != "send" || m.Actions[0].SideEffect != "write" || m.Actions[0].Idempotent {
		t.Errorf("actions %+v", m.Actions)
	}
}
