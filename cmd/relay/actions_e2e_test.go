package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/sdk/connectortest"
)

const (
	signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	smtpUser      = "relay-test"
	smtpPassword  = "smtp-Pa55word-for-the-test"
)

// TestActionsOverHTTP is a new user's path through the actions API with
// real peers, on SQLite and PostgreSQL: connect, preview, execute with an
// Idempotency-Key, read the run. Webhooks go to a local sink that checks
// the signature itself; mail goes to a local SMTP server that requires a
// sign-in.
//
// echo and webhook ship both forms, as `make build` makes them: each runs
// once as WASM (the default) and once native.
func TestActionsOverHTTP(t *testing.T) {
	connectors := t.TempDir()
	for _, pkg := range []string{"echo", "webhook"} {
		catalogtest.BuildBoth(t, connectors, "github.com/relayhq/relay/plugins/"+pkg+"/cmd/"+pkg)
	}
	catalogtest.Build(t, connectors, "github.com/relayhq/relay/plugins/smtp/cmd/smtp")
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cfg := Config{
				DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: connectors,
				EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
				// This machine can sandbox native connectors fully: the
				// native calls below, SMTP's connection among them, go
				// through the host's network.
				NativeSandbox: goplugin.SandboxRequired,
			}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			// Compiling a Go-built module takes minutes under the race
			// detector: the modules compiled once (here, or by the
			// conformance kit, which builds the same bytes) are shared.
			cfg.WASMCacheDir = connectortest.CompilationCacheDir()
			logs := &syncBuffer{}
			m, banner := startMain(t, cfg, logs)
			waitForLog(t, logs, "WASM connector loaded", 2, 8*time.Minute)
			api := &apiClient{t: t, url: m.URL(), key: keyRE.FindString(banner)}
			for _, runtime := range []string{"wasm", "native"} {
				testEcho(api, runtime)
				testWebhook(api, runtime)
			}
			testSMTP(api)
			testSandboxShown(api)
			for _, secret := range []string{signingSecret, smtpPassword} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log contains a connection secret")
				}
				for _, path := range []string{"/v1/connections", "/v1/runs", "/v1/audit?limit=200"} {
					if _, body := api.call("GET", path, nil); strings.Contains(string(body), secret) {
						t.Errorf("%s shows a connection secret", path)
					}
				}
			}
		})
	}
}

type apiClient struct {
	t        *testing.T
	url, key string
}

func (a *apiClient) call(method, path string, body any, headers ...string) (*http.Response, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, a.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func (a *apiClient) must(status int, method, path string, body any, headers ...string) []byte {
	a.t.Helper()
	resp, data := a.call(method, path, body, headers...)
	if resp.StatusCode != status {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, status)
	}
	return data
}

// connect makes a connection in the given form (wasm, the default, is not
// asked for) and checks that it shows the form. The caller deletes it with
// the function returned, so that the next form's connection has the
// connector to itself.
func (a *apiClient) connect(in map[string]any, runtime string) (remove func()) {
	a.t.Helper()
	if runtime != "wasm" {
		in["runtime"] = runtime
	}
	var conn struct {
		ID      string `json:"id"`
		Runtime string `json:"runtime"`
	}
	json.Unmarshal(a.must(201, "POST", "/v1/connections", in), &conn)
	if conn.Runtime != runtime {
		a.t.Fatalf("the connection runs %q, want %q", conn.Runtime, runtime)
	}
	return func() { a.must(204, "DELETE", "/v1/connections/"+conn.ID, nil) }
}

// runtimeOf is the form a run's JSON says ran it.
func runtimeOf(run []byte) string {
	var r struct {
		Runtime string `json:"runtime"`
	}
	json.Unmarshal(run, &r)
	return r.Runtime
}

func testEcho(a *apiClient, runtime string) {
	defer a.connect(map[string]any{"connector": "echo", "name": "echo-" + runtime}, runtime)()
	out := a.must(200, "POST", "/v1/actions/echo.echo/execute", map[string]any{"params": map[string]any{"ping": "pong"}})
	if !strings.Contains(string(out), `"output":{"ping":"pong"}`) || runtimeOf(out) != runtime {
		a.t.Fatalf("echo on %s: %s", runtime, out)
	}
}

func testWebhook(a *apiClient, runtime string) {
	type delivery struct {
		id, ts, sig string
		body        []byte
	}
	var mu sync.Mutex
	var got []delivery
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer sink.Close()

	defer a.connect(map[string]any{"connector": "webhook", "name": "hooks-" + runtime,
		"secrets": map[string]string{"signing_secret": signingSecret}}, runtime)()
	req := map[string]any{"params": map[string]any{"url": sink.URL + "/in", "body": map[string]any{"event": "order.paid", "amount": 42}}}
	idemKey := "order-42-" + runtime
	// Previewed with the key the execute carries: the same webhook-id.
	var preview struct {
		Preview struct {
			WebhookID string `json:"webhook_id"`
		} `json:"preview"`
	}
	json.Unmarshal(a.must(200, "POST", "/v1/actions/webhook.send/preview", req, "Idempotency-Key", idemKey), &preview)
	first := a.must(200, "POST", "/v1/actions/webhook.send/execute", req, "Idempotency-Key", idemKey)
	if runtimeOf(first) != runtime {
		a.t.Fatalf("the run says it ran on %q, want %q: %s", runtimeOf(first), runtime, first)
	}
	resp, replay := a.call("POST", "/v1/actions/webhook.send/execute", req, "Idempotency-Key", idemKey)
	if resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(replay, first) {
		a.t.Fatalf("the replay: %d %s", resp.StatusCode, replay)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		a.t.Fatalf("%d deliveries, want exactly 1", len(got))
	}
	// The signature checked here, independently of the connector: base64
	// HMAC-SHA256 of id.timestamp.body under the decoded whsec_ secret.
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(signingSecret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(got[0].id + "." + got[0].ts + "."))
	mac.Write(got[0].body)
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); got[0].sig != want {
		a.t.Fatalf("signature %q, want %q", got[0].sig, want)
	}
	var run struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Output struct {
			Status    int    `json:"status"`
			WebhookID string `json:"webhook_id"`
		} `json:"output"`
	}
	json.Unmarshal(first, &run)
	if run.Status != "succeeded" || run.Output.Status != 202 || run.Output.WebhookID != got[0].id {
		a.t.Fatalf("run %+v", run)
	}
	if preview.Preview.WebhookID != got[0].id {
		a.t.Fatalf("the preview showed webhook-id %q, the delivery carried %q", preview.Preview.WebhookID, got[0].id)
	}
	a.must(200, "GET", "/v1/runs/"+run.ID, nil)
}

func testSMTP(a *apiClient) {
	srv := startSMTP(a.t)
	host, port, _ := net.SplitHostPort(srv.addr)
	a.must(201, "POST", "/v1/connections", map[string]any{"connector": "smtp", "name": "mail",
		"config":  map[string]any{"host": host, "port": atoi(a.t, port), "username": smtpUser, "from": "Relay <relay@example.com>", "tls": "none"},
		"secrets": map[string]string{"password": smtpPassword}})
	req := map[string]any{"params": map[string]any{
		"to": []string{"ada@example.com"}, "bcc": []string{"audit@example.com"},
		"subject": "Hello from Relay", "text": "It works.",
	}}
	a.must(200, "POST", "/v1/actions/smtp.send_email/preview", req)
	if n := srv.count(); n != 0 {
		a.t.Fatalf("preview delivered %d messages", n)
	}
	a.must(200, "POST", "/v1/actions/smtp.send_email/execute", req, "Idempotency-Key", "mail-1")
	msgs := srv.messages()
	if len(msgs) != 1 {
		a.t.Fatalf("%d messages, want 1", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].data))
	if err != nil {
		a.t.Fatal(err)
	}
	if m.Header.Get("Subject") != "Hello from Relay" || m.Header.Get("To") == "" || m.Header.Get("Bcc") != "" ||
		len(msgs[0].rcpts) != 2 || msgs[0].user != smtpUser {
		a.t.Fatalf("message: %v, rcpts %v, user %q", m.Header, msgs[0].rcpts, msgs[0].user)
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// smtpSink is a real SMTP server on loopback that requires AUTH PLAIN.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []smtpMessage
}

type smtpMessage struct {
	user  string
	rcpts []string
	data  []byte
}

func (s *smtpSink) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

func (s *smtpSink) count() int { return len(s.messages()) }

func startSMTP(t *testing.T) *smtpSink {
	sink := &smtpSink{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &smtpSession{sink: sink}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback only, as the connector's tls "none" is
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); l.Close() })
	return sink
}

type smtpSession struct {
	sink  *smtpSink
	user  string
	rcpts []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != smtpUser || pass != smtpPassword {
			return gosmtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(string, *gosmtp.MailOptions) error {
	if s.user == "" {
		return gosmtp.ErrAuthRequired
	}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, smtpMessage{user: s.user, rcpts: s.rcpts, data: data})
	s.sink.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.rcpts = nil }
func (s *smtpSession) Logout() error { return nil }

// waitForLog waits until the log holds n lines containing msg.
func waitForLog(t *testing.T, logs *syncBuffer, msg string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(logs.String(), msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %s the log has %d lines %q, want %d:\n%s", within, strings.Count(logs.String(), msg), msg, n, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testSandboxShown checks that GET /v1/connectors shows how each form of
// each version runs: native processes under --native-sandbox=required.
func testSandboxShown(a *apiClient) {
	var list struct {
		Data []struct {
			Name    string
			Sandbox []struct {
				Version, Runtime, Mode, Network, Filesystem string
			}
		}
	}
	if err := json.Unmarshal(a.must(200, "GET", "/v1/connectors", nil), &list); err != nil {
		a.t.Fatal(err)
	}
	want := map[string]string{"echo": "wasm native", "webhook": "wasm native", "smtp": "native"}
	for _, c := range list.Data {
		var forms []string
		for _, sb := range c.Sandbox {
			forms = append(forms, sb.Runtime)
			switch {
			case sb.Runtime == "native" && (sb.Mode != "required" || sb.Network != "host-only" || sb.Filesystem != "restricted"),
				sb.Runtime == "wasm" && (sb.Mode != "" || sb.Network != "host-only" || sb.Filesystem != "none"):
				a.t.Errorf("%s: sandbox %+v", c.Name, sb)
			}
		}
		if got := strings.Join(forms, " "); got != want[c.Name] {
			a.t.Errorf("%s: sandbox shown for %q, want %q", c.Name, got, want[c.Name])
		}
	}
}
