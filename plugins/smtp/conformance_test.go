package smtp_test

import (
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/connectortest"
)

// The smtp connector passes the conformance kit as a real plugin process,
// sending to test SMTP servers on loopback, which the operator's egress
// allow-list admits. Every TCP connection to them is a side effect the kit
// watches: preview and invalid input must cause none. The Hang fixture
// points at the kit's hanging peer, which never greets, to check that
// send_email honours its deadline.
func TestConformance(t *testing.T) {
	ok := startServer(t, "starttls")
	refusing := startServer(t, "starttls")
	refusing.fail(&gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, nil)

	config := func(ts *testServer) map[string]any {
		return map[string]any{
			"host": "127.0.0.1", "port": ts.port(), "from": "Relay Bot <bot@relay.example>",
			"username": testUser, "ca_pem": testCert(t).pem,
		}
	}
	secrets := map[string]string{"password": testPassword}
	input := map[string]any{
		"to": []string{"Ann <ann@example.com>"}, "cc": []string{"bob@example.com"}, "bcc": []string{"audit@example.net"},
		"subject": "Your report ✓", "text": "It is ready.", "html": "<p>It is <b>ready</b>.</p>",
	}
	connectortest.Run(t, connectortest.Config{
		Package:     "github.com/relayhq/relay/plugins/smtp/cmd/smtp",
		Env:         []string{"RELAY_EGRESS_ALLOW=127.0.0.1/32"},
		SideEffects: func() int { return int(ok.conns.Load() + refusing.conns.Load()) },
		Fixtures: []connectortest.Fixture{
			{Action: "send_email", Config: config(ok), Secrets: secrets, Input: input},
			{Name: "wrong password", Action: "send_email", Config: config(ok), WantError: connector.CodeUnauthorized,
				Secrets: map[string]string{"password": "wrong"}, Input: input},
			{Name: "recipient refused", Action: "send_email", Config: config(refusing), Secrets: secrets,
				WantError: connector.CodePermanent, Input: input},
			{Name: "metadata address", Action: "send_email", WantError: connector.CodeEgressDenied, Secrets: secrets,
				Config: map[string]any{"host": "169.254.169.254", "from": "bot@relay.example", "username": testUser}, Input: input},
			{Name: "cleartext off loopback", Action: "send_email", WantError: connector.CodeInvalidInput, Secrets: secrets,
				Config: map[string]any{"host": "192.0.2.25", "tls": "none", "from": "bot@relay.example", "username": testUser}, Input: input},
		},
		// A server that accepts the connection and never greets: send_email
		// must give up when its deadline passes and close the connection.
		Hang: func(peer connectortest.HangingPeer) connectortest.Fixture {
			return connectortest.Fixture{Action: "send_email", Secrets: secrets, Input: input, Config: map[string]any{
				"host": peer.Host, "port": peer.Port, "from": "Relay Bot <bot@relay.example>",
				"username": testUser, "ca_pem": testCert(t).pem,
			}}
		},
	})
	if n := len(ok.messages()); n != 1 {
		t.Fatalf("%d messages delivered, want 1 (the first fixture's execute)", n)
	}
}
