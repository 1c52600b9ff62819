package smtp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/relayhq/relay/plugins/smtp"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// These tests drive the connector in-process through connector.Server,
// exactly as the plugin transport does, against a real SMTP server.

const loopbackAllowed = "127.0.0.1/32"

// newServer builds the connector's server with the operator's egress
// exceptions as the host would pass them.
func newServer(t *testing.T, allow string) *connector.Server {
	t.Helper()
	t.Setenv(protocol.EnvEgressAllow, allow)
	s, err := connector.NewServer(smtp.New(), manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// connection is a connection's config and secrets.
type connection struct {
	config  map[string]any
	secrets map[string]string
}

// connTo is a working connection to ts in the given tls mode.
func connTo(t *testing.T, ts *testServer, mode string) connection {
	return connection{
		config: map[string]any{
			"host": "127.0.0.1", "port": ts.port(), "tls": mode,
			"from": "Relay Bot <bot@relay.example>", "username": testUser,
			"ca_pem": testCert(t).pem,
		},
		secrets: map[string]string{"password": testPassword},
	}
}

func (c connection) with(key string, value any) connection {
	config := map[string]any{}
	for k, v := range c.config {
		config[k] = v
	}
	if value == nil {
		delete(config, key)
	} else {
		config[key] = value
	}
	return connection{config: config, secrets: c.secrets}
}

func (c connection) proto(t *testing.T) *connectorv1.Connection {
	t.Helper()
	raw, err := json.Marshal(c.config)
	if err != nil {
		t.Fatal(err)
	}
	return &connectorv1.Connection{ConfigJson: raw, Secrets: c.secrets}
}

func request(t *testing.T, c connection, input any, key string) *connectorv1.ActionRequest {
	t.Helper()
	raw, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	return &connectorv1.ActionRequest{
		Action: "send_email", InputJson: raw, Connection: c.proto(t),
		RunId: "run_1", IdempotencyKey: key, WorkspaceId: "ws_1",
	}
}

type output struct {
	MessageID string   `json:"message_id"`
	Accepted  []string `json:"accepted"`
	Response  string   `json:"response"`
}

func execute(t *testing.T, s *connector.Server, c connection, input any, key string) (output, *connectorv1.Error) {
	t.Helper()
	resp, err := s.Execute(context.Background(), request(t, c, input, key))
	if err != nil {
		t.Fatal(err)
	}
	var out output
	if resp.GetError() == nil {
		if err := json.Unmarshal(resp.GetOutputJson(), &out); err != nil {
			t.Fatal(err)
		}
	}
	return out, resp.GetError()
}

func mustExecute(t *testing.T, s *connector.Server, c connection, input any, key string) output {
	t.Helper()
	out, perr := execute(t, s, c, input, key)
	if perr != nil {
		t.Fatalf("execute: %v: %s %v", perr.GetCode(), perr.GetMessage(), perr.GetFields())
	}
	return out
}

func checkConfig(t *testing.T, s *connector.Server, c connection) *connectorv1.Error {
	t.Helper()
	resp, err := s.CheckConfig(context.Background(), &connectorv1.CheckConfigRequest{Connection: c.proto(t)})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetError()
}

func wantCode(t *testing.T, perr *connectorv1.Error, want connectorv1.ErrorCode) {
	t.Helper()
	if perr.GetCode() != want {
		t.Fatalf("error = %v (%q), want %v", perr.GetCode(), perr.GetMessage(), want)
	}
}

var simple = map[string]any{"to": []string{"ann@example.com"}, "subject": "Hi", "text": "Hello."}

func TestSendSTARTTLSDeliversAProperMessage(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	input := map[string]any{
		"to":       []string{"Ann Example <ann@example.com>", "bob@example.com"},
		"cc":       []string{"Zoë Ünicode <zoe@example.org>"},
		"bcc":      []string{"secret@example.net"},
		"reply_to": "replies@relay.example",
		"subject":  "Héllo — your report ✓",
		"text":     "Hi Ann,\nthe report is ready.\n.\nA line with a lone dot, above.",
		"html":     "<p>Hi Ann,</p><p>the report is <b>ready</b>.</p>",
	}
	out := mustExecute(t, s, connTo(t, ts, "starttls"), input, "")

	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(msgs))
	}
	got := msgs[0]
	if got.user != testUser || got.from != "bot@relay.example" {
		t.Errorf("signed in as %q, MAIL FROM %q", got.user, got.from)
	}
	wantRcpts := []string{"ann@example.com", "bob@example.com", "zoe@example.org", "secret@example.net"}
	if !slices.Equal(got.rcpts, wantRcpts) {
		t.Errorf("RCPT TO = %v, want %v", got.rcpts, wantRcpts)
	}
	if !slices.Equal(out.Accepted, wantRcpts) {
		t.Errorf("accepted = %v, want %v", out.Accepted, wantRcpts)
	}
	if !strings.HasPrefix(out.Response, "250 ") {
		t.Errorf("response = %q, want the server's 250 line", out.Response)
	}

	msg, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "bot@relay.example" || from.Name != "Relay Bot" {
		t.Errorf("From = %q (%v)", h.Get("From"), err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Name != "Ann Example" || to[0].Address != "ann@example.com" || to[1].Address != "bob@example.com" {
		t.Errorf("To = %q (%v)", h.Get("To"), err)
	}
	cc, err := h.AddressList("Cc")
	if err != nil || len(cc) != 1 || cc[0].Name != "Zoë Ünicode" || cc[0].Address != "zoe@example.org" {
		t.Errorf("Cc = %q (%v)", h.Get("Cc"), err)
	}
	if _, ok := h["Bcc"]; ok || bytes.Contains(got.data, []byte("secret@example.net")) {
		t.Errorf("the Bcc recipient is visible in the message:\n%s", got.data)
	}
	if rt, err := mail.ParseAddress(h.Get("Reply-To")); err != nil || rt.Address != "replies@relay.example" {
		t.Errorf("Reply-To = %q (%v)", h.Get("Reply-To"), err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != "Héllo — your report ✓" {
		t.Errorf("Subject = %q, decoded %q (%v)", h.Get("Subject"), subject, err)
	}
	if h.Get("Message-ID") != out.MessageID || !strings.HasSuffix(out.MessageID, "@relay.example>") || !strings.HasPrefix(out.MessageID, "<") {
		t.Errorf("Message-ID = %q, output message_id = %q", h.Get("Message-ID"), out.MessageID)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if h.Get("MIME-Version") != "1.0" {
		t.Errorf("MIME-Version = %q", h.Get("MIME-Version"))
	}
	for _, line := range strings.Split(string(got.data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("a line of %d characters", len(line))
		}
	}

	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v)", h.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	var order []string
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, ctParams, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if ctParams["charset"] != "utf-8" {
			t.Errorf("part %s: charset %q", ct, ctParams["charset"])
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts[ct] = string(body)
		order = append(order, ct)
	}
	if !slices.Equal(order, []string{"text/plain", "text/html"}) {
		t.Errorf("parts %v, want text/plain then text/html", order)
	}
	if want := strings.ReplaceAll(input["text"].(string), "\n", "\r\n"); parts["text/plain"] != want {
		t.Errorf("text part = %q, want %q", parts["text/plain"], want)
	}
	if parts["text/html"] != input["html"] {
		t.Errorf("html part = %q", parts["text/html"])
	}
}

func TestMessageIDFollowsTheIdempotencyKey(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "starttls")
	a := mustExecute(t, s, c, simple, "key-1")
	b := mustExecute(t, s, c, simple, "key-1")
	other := mustExecute(t, s, c, simple, "key-2")
	r1 := mustExecute(t, s, c, simple, "")
	r2 := mustExecute(t, s, c, simple, "")
	if a.MessageID != b.MessageID {
		t.Errorf("same key, different ids: %s, %s", a.MessageID, b.MessageID)
	}
	if a.MessageID == other.MessageID || r1.MessageID == r2.MessageID || r1.MessageID == a.MessageID {
		t.Errorf("ids collide: %s %s %s %s", a.MessageID, other.MessageID, r1.MessageID, r2.MessageID)
	}
	msgs := ts.messages()
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5", len(msgs))
	}
	for i, want := range []string{a.MessageID, b.MessageID, other.MessageID, r1.MessageID, r2.MessageID} {
		m, err := mail.ReadMessage(bytes.NewReader(msgs[i].data))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("Message-ID"); got != want {
			t.Errorf("message %d: Message-ID %s, output said %s", i, got, want)
		}
	}
}

func TestSendImplicitTLS(t *testing.T) {
	ts := startServer(t, "implicit")
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "implicit")
	if perr := checkConfig(t, s, c); perr != nil {
		t.Fatalf("check: %v %s", perr.GetCode(), perr.GetMessage())
	}
	html := map[string]any{"to": []string{"ann@example.com"}, "subject": "Hi", "html": "<p>Hello</p>"}
	mustExecute(t, s, c, html, "")
	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].data))
	if err != nil {
		t.Fatal(err)
	}
	if ct := m.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cte := m.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding = %q", cte)
	}
}

func TestTLSNone(t *testing.T) {
	ts := startServer(t, "none")
	s := newServer(t, loopbackAllowed)

	t.Run("to loopback works", func(t *testing.T) {
		for _, host := range []string{"127.0.0.1", "localhost"} {
			c := connTo(t, ts, "none").with("host", host).with("ca_pem", nil)
			if perr := checkConfig(t, s, c); perr != nil {
				t.Fatalf("%s: check: %v %s", host, perr.GetCode(), perr.GetMessage())
			}
			mustExecute(t, s, c, simple, "")
		}
		if n := len(ts.messages()); n != 2 {
			t.Errorf("%d messages, want 2", n)
		}
	})

	t.Run("to any other host is refused before connecting", func(t *testing.T) {
		// Documentation addresses: nothing listens there, and the test
		// never tries, since the connector refuses first.
		for _, host := range []string{"192.0.2.10", "2001:db8::25"} {
			c := connTo(t, ts, "none").with("host", host)
			for name, perr := range map[string]*connectorv1.Error{
				"check":   checkConfig(t, s, c),
				"execute": func() *connectorv1.Error { _, e := execute(t, s, c, simple, ""); return e }(),
			} {
				wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT)
				if len(perr.GetFields()) != 1 || perr.GetFields()[0].GetPointer() != "/tls" {
					t.Errorf("%s %s: fields %v, want /tls", name, host, perr.GetFields())
				}
			}
		}
	})
}

func TestAuthLOGIN(t *testing.T) {
	ts := startServer(t, "starttls")
	ts.mechs = []string{"LOGIN"}
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "starttls")
	if perr := checkConfig(t, s, c); perr != nil {
		t.Fatalf("check: %v %s", perr.GetCode(), perr.GetMessage())
	}
	mustExecute(t, s, c, simple, "")
	if msgs := ts.messages(); len(msgs) != 1 || msgs[0].user != testUser {
		t.Fatalf("messages %v", msgs)
	}
}

func TestCheckConfigSignsIn(t *testing.T) {
	for _, mode := range []string{"starttls", "implicit", "none"} {
		t.Run(mode, func(t *testing.T) {
			ts := startServer(t, mode)
			s := newServer(t, loopbackAllowed)
			if perr := checkConfig(t, s, connTo(t, ts, mode)); perr != nil {
				t.Fatalf("check: %v %s", perr.GetCode(), perr.GetMessage())
			}
			if ts.signIns() != 1 || len(ts.messages()) != 0 {
				t.Errorf("sign-ins %d, messages %d; want 1 and 0", ts.signIns(), len(ts.messages()))
			}
		})
	}
}

func TestWrongPasswordIsUnauthorized(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "starttls")
	c.secrets = map[string]string{"password": "not-the-password"}

	perr := checkConfig(t, s, c)
	wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED)
	_, perr2 := execute(t, s, c, simple, "")
	wantCode(t, perr2, connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED)
	for _, e := range []*connectorv1.Error{perr, perr2} {
		if strings.Contains(e.GetMessage(), "not-the-password") {
			t.Errorf("the error shows the password: %s", e.GetMessage())
		}
	}

	// A server that wants a sign-in the connection does not give.
	anonymous := connTo(t, ts, "starttls").with("username", nil)
	anonymous.secrets = nil
	_, perr3 := execute(t, s, anonymous, simple, "")
	wantCode(t, perr3, connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED)

	if n := len(ts.messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

func TestInvalidInputIsRefusedBeforeConnecting(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "starttls")
	cases := []struct {
		name    string
		conn    connection
		input   map[string]any
		pointer string
	}{
		{"subject injection", c, map[string]any{"to": []string{"ann@example.com"}, "subject": "x\r\nBcc: evil@x", "text": "t"}, "/subject"},
		{"subject bare LF", c, map[string]any{"to": []string{"ann@example.com"}, "subject": "x\nBcc: evil@x", "text": "t"}, "/subject"},
		{"to injection", c, map[string]any{"to": []string{"ann@example.com", "x\r\nBcc: evil@x"}, "subject": "s", "text": "t"}, "/to/1"},
		{"cc injection", c, map[string]any{"to": []string{"ann@example.com"}, "cc": []string{"ann@example.com\r\nBcc: evil@x"}, "subject": "s", "text": "t"}, "/cc/0"},
		{"bcc injection", c, map[string]any{"to": []string{"ann@example.com"}, "bcc": []string{"\"x\r\nBcc: evil@x\" <a@b.c>"}, "subject": "s", "text": "t"}, "/bcc/0"},
		{"encoded name injection", c, map[string]any{"to": []string{"=?utf-8?q?x=0D=0ABcc:_evil@x?= <a@b.c>"}, "subject": "s", "text": "t"}, "/to/0"},
		{"reply_to injection", c, map[string]any{"to": []string{"ann@example.com"}, "reply_to": "r@x.y\nBcc: evil@x", "subject": "s", "text": "t"}, "/reply_to"},
		{"bad address", c, map[string]any{"to": []string{"not an address"}, "subject": "s", "text": "t"}, "/to/0"},
		{"bad cc address", c, map[string]any{"to": []string{"ann@example.com"}, "cc": []string{"ok@example.com", "a@@b"}, "subject": "s", "text": "t"}, "/cc/1"},
		{"non-ASCII address", c, map[string]any{"to": []string{"zoë@example.com"}, "subject": "s", "text": "t"}, "/to/0"},
		{"empty body", c, map[string]any{"to": []string{"ann@example.com"}, "subject": "s", "text": ""}, ""},
		{"from injection in config", c.with("from", "bot@relay.example\r\nBcc: evil@x"), simple, "/from"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, call := range map[string]func() *connectorv1.Error{
				"execute": func() *connectorv1.Error { _, e := execute(t, s, tc.conn, tc.input, ""); return e },
				"preview": func() *connectorv1.Error {
					r, err := s.Preview(context.Background(), request(t, tc.conn, tc.input, ""))
					if err != nil {
						t.Fatal(err)
					}
					return r.GetError()
				},
			} {
				perr := call()
				wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT)
				var pointers []string
				for _, f := range perr.GetFields() {
					pointers = append(pointers, f.GetPointer())
				}
				if !slices.Contains(pointers, tc.pointer) {
					t.Errorf("%s: fields %v, want one at %q (%s)", name, perr.GetFields(), tc.pointer, perr.GetMessage())
				}
			}
		})
	}
	if n := ts.conns.Load(); n != 0 {
		t.Errorf("%d connections to the server; invalid input must not connect", n)
	}
}

func TestLoopbackIsRefusedWithoutTheOperatorsAllowance(t *testing.T) {
	for _, mode := range []string{"starttls", "none"} {
		t.Run(mode, func(t *testing.T) {
			ts := startServer(t, mode)
			s := newServer(t, "")
			c := connTo(t, ts, mode)
			wantCode(t, checkConfig(t, s, c), connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED)
			_, perr := execute(t, s, c, simple, "")
			wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED)
			if n, c := len(ts.messages()), ts.conns.Load(); n != 0 || c != 0 {
				t.Errorf("%d messages, %d connections; want none", n, c)
			}
		})
	}
}

func TestPreviewSendsNothingAndShowsNoPassword(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	input := map[string]any{
		"to": []string{"Ann <ann@example.com>"}, "bcc": []string{"hidden@example.net"},
		"subject": "Quarterly numbers", "text": "plain", "html": "<p>rich</p>",
	}
	resp, err := s.Preview(context.Background(), request(t, connTo(t, ts, "starttls"), input, "key-1"))
	if err != nil {
		t.Fatal(err)
	}
	if perr := resp.GetError(); perr != nil {
		t.Fatalf("preview: %v %s", perr.GetCode(), perr.GetMessage())
	}
	raw := resp.GetPreviewJson()
	if bytes.Contains(raw, []byte(testPassword)) {
		t.Errorf("the preview shows the password: %s", raw)
	}
	var p struct {
		Server          string   `json:"server"`
		Recipients      []string `json:"recipients"`
		Headers         []string `json:"headers"`
		MessageID       string   `json:"message_id"`
		MessageIDStable bool     `json:"message_id_stable"`
		SizeBytes       int      `json:"size_bytes"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Recipients, []string{"ann@example.com", "hidden@example.net"}) {
		t.Errorf("recipients %v", p.Recipients)
	}
	if !slices.Contains(p.Headers, "Subject: Quarterly numbers") || !slices.Contains(p.Headers, "To: \"Ann\" <ann@example.com>") {
		t.Errorf("headers %q", p.Headers)
	}
	for _, h := range p.Headers {
		if strings.HasPrefix(h, "Bcc:") || strings.Contains(h, "hidden@") {
			t.Errorf("a header shows the Bcc recipient: %q", h)
		}
	}
	if !p.MessageIDStable || p.SizeBytes < 100 {
		t.Errorf("message_id_stable %v, size %d", p.MessageIDStable, p.SizeBytes)
	}
	if n, c := len(ts.messages()), ts.conns.Load(); n != 0 || c != 0 {
		t.Errorf("preview made %d connections and delivered %d messages", c, n)
	}

	// The stable id is the one the send then uses.
	out := mustExecute(t, s, connTo(t, ts, "starttls"), input, "key-1")
	if out.MessageID != p.MessageID {
		t.Errorf("previewed id %s, sent %s", p.MessageID, out.MessageID)
	}
}

func TestServerRefusalsAreClassified(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "starttls")
	cases := []struct {
		name       string
		rcpt, data error
		want       connectorv1.ErrorCode
	}{
		{"451 at DATA", nil, &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}, connectorv1.ErrorCode_ERROR_CODE_RETRYABLE},
		{"550 at DATA", nil, &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "content rejected"}, connectorv1.ErrorCode_ERROR_CODE_PERMANENT},
		{"450 at RCPT", &gosmtp.SMTPError{Code: 450, EnhancedCode: gosmtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}, nil, connectorv1.ErrorCode_ERROR_CODE_RETRYABLE},
		{"550 at RCPT", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, nil, connectorv1.ErrorCode_ERROR_CODE_PERMANENT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts.fail(tc.rcpt, tc.data)
			_, perr := execute(t, s, c, simple, "")
			wantCode(t, perr, tc.want)
			if !strings.Contains(perr.GetMessage(), "replied") {
				t.Errorf("message %q does not quote the server", perr.GetMessage())
			}
		})
	}
	if n := len(ts.messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

func TestTLSIsNeverSkipped(t *testing.T) {
	t.Run("untrusted certificate", func(t *testing.T) {
		ts := startServer(t, "starttls")
		s := newServer(t, loopbackAllowed)
		c := connTo(t, ts, "starttls").with("ca_pem", nil)
		wantCode(t, checkConfig(t, s, c), connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
		_, perr := execute(t, s, c, simple, "")
		wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
		if !strings.Contains(perr.GetMessage(), "ca_pem") {
			t.Errorf("message %q does not point at ca_pem", perr.GetMessage())
		}
		if n := ts.authAttempts(); n != 0 {
			t.Errorf("%d sign-in attempts over an unverified connection", n)
		}
	})
	t.Run("server without STARTTLS", func(t *testing.T) {
		ts := startServer(t, "none") // offers AUTH in clear
		s := newServer(t, loopbackAllowed)
		_, perr := execute(t, s, connTo(t, ts, "starttls"), simple, "")
		wantCode(t, perr, connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
		if n := ts.authAttempts(); n != 0 {
			t.Errorf("%d sign-in attempts in clear", n)
		}
	})
	t.Run("implicit TLS to a plain server", func(t *testing.T) {
		ts := startServer(t, "none")
		s := newServer(t, loopbackAllowed)
		wantCode(t, checkConfig(t, s, connTo(t, ts, "implicit")), connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
		if n := ts.authAttempts(); n != 0 {
			t.Errorf("%d sign-in attempts in clear", n)
		}
	})
}

func TestUnreachableServerIsRetryable(t *testing.T) {
	ts := startServer(t, "starttls")
	s := newServer(t, loopbackAllowed)
	c := connTo(t, ts, "starttls")
	// A port that was just free: nothing listens on it.
	c = c.with("port", freePort(t))
	wantCode(t, checkConfig(t, s, c), connectorv1.ErrorCode_ERROR_CODE_RETRYABLE)
}

func TestManifest(t *testing.T) {
	s := newServer(t, "")
	m, err := manifest.Parse(s.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "smtp" || m.Version != "1.0.0" || !slices.Equal(m.Egress, []string{"*"}) {
		t.Errorf("name %s, version %s, egress %v", m.Name, m.Version, m.Egress)
	}
	if !slices.Equal(m.SecretFields(), []string{"password"}) {
		t.Errorf("secret fields %v, want [password]", m.SecretFields())
	}
	a := m.Action("send_email")
	if a == nil || a.SideEffect != manifest.SideEffectWrite {
		t.Fatalf("send_email: %+v", a)
	}
}
