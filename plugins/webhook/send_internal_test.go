package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/egress"
)

// TestDeniedErrorSurvivesNetHTTP checks that a refusal at dial time, which
// net/http wraps in a *url.Error, still reaches the SDK as an
// *egress.DeniedError (which it reports as EGRESS_DENIED), and that the
// message does not repeat the URL's path and query.
func TestDeniedErrorSurvivesNetHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the receiver was reached")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	req := connector.Request[SendInput]{
		// A name, so the refusal happens in the guard's DialContext, not
		// in the up-front check of address literals.
		Input: SendInput{URL: "http://localhost:" + port + "/hook?token=s3cr3t", Body: json.RawMessage(`{}`)},
		Connection: connector.Connection{Secrets: map[string]string{
			"signing_secret": "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		}},
		RunID:  "run_1",
		Egress: egress.New([]string{"*"}, nil),
	}
	_, err := send(context.Background(), req)
	var denied *egress.DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("send = %v (%T); want an *egress.DeniedError in the chain", err, err)
	}
	if denied.Host != "localhost" || !denied.Addr.IsLoopback() {
		t.Errorf("denied = %+v", denied)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "/hook") {
		t.Errorf("the message repeats the URL: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 120 ":                         2 * time.Minute,
		"0":                             0,
		"-5":                            0,
		"1.5":                           0,
		"soon":                          0,
		"99999999999999999999":          0, // does not parse as uint64
		"9999999999":                    maxRetryAfter,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // past
		"Sat, 02 Jan 2027 03:04:05 GMT": maxRetryAfter,
	} {
		h := connector.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestLocationHost(t *testing.T) {
	base, err := parseURL("https://hooks.example.com/a/b")
	if err != nil {
		t.Fatal(err)
	}
	for loc, want := range map[string]string{
		"":                                    "nowhere (no Location header)",
		"/elsewhere?token=x":                  "hooks.example.com",
		"http://169.254.169.254/latest":       "169.254.169.254",
		"https://other.example.net:8443/x?y=": "other.example.net:8443",
		"http://[::1]:80/":                    "[::1]:80",
		"%zz":                                 "an unparsable Location",
	} {
		if got := locationHost(base, loc); got != want {
			t.Errorf("locationHost(%q) = %q, want %q", loc, got, want)
		}
	}
}

func TestWebhookIDWithoutKeyOrRun(t *testing.T) {
	a, b := webhookID("ws", "", ""), webhookID("ws", "", "")
	if a == b || !strings.HasPrefix(a, "msg_") {
		t.Errorf("ids %q and %q", a, b)
	}
}

// TestSignStandardWebhooksVector reproduces the test vector the Standard
// Webhooks reference libraries publish: what a receiver's library checks.
func TestSignStandardWebhooksVector(t *testing.T) {
	key, err := ParseSigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("sign = %s, want %s", got, want)
	}
}
