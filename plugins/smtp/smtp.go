// Package smtp is the smtp connector: smtp.send_email submits a message
// through the connection's SMTP server (STARTTLS or implicit TLS, AUTH PLAIN
// or LOGIN), and its connection check signs in without sending anything.
// Every connection goes through the SDK's egress guard.
package smtp

import (
	"context"
	_ "embed"
	"net/mail"
	"time"

	"github.com/relayhq/relay/sdk/connector"
)

// Version is the connector's version.
const Version = "1.0.0"

var (
	//go:embed schema/send_email.input.json
	sendEmailInputSchema []byte
	//go:embed schema/send_email.output.json
	sendEmailOutputSchema []byte
)

// New returns the smtp connector.
func New() *connector.Connector {
	return &connector.Connector{
		Name:        "smtp",
		Version:     Version,
		Title:       "SMTP",
		Description: "Sends email through any SMTP server: a mail provider's submission service or your own relay.",
		Publisher:   "Relay",
		License:     "Apache-2.0",
		Config:      Config{},
		// The server is whatever the connection names; the guard still
		// refuses private and other special addresses unless the operator
		// allows them.
		Egress:      []string{"*"},
		CheckConfig: checkConfig,
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{
				Name:  "send_email",
				Title: "Send an email",
				Description: "Sends one message to its to, cc and bcc recipients, as text, HTML or both. " +
					"All recipients get it or none does. With an idempotency key the Message-ID is stable, so receivers can drop a retried duplicate.",
				SideEffect:   connector.Write,
				InputSchema:  sendEmailInputSchema,
				OutputSchema: sendEmailOutputSchema,
			}, previewSend, executeSend),
		},
	}
}

// SendEmailOutput is the output of smtp.send_email.
type SendEmailOutput struct {
	MessageID string   `json:"message_id"`
	Accepted  []string `json:"accepted"`
	Response  string   `json:"response"`
}

// SendEmailPreview is what smtp.send_email would send. Nothing in it is
// secret: no password, and Bcc recipients only as the caller gave them.
type SendEmailPreview struct {
	Server       string   `json:"server"` // host:port
	TLS          string   `json:"tls"`
	Username     string   `json:"username,omitempty"`
	EnvelopeFrom string   `json:"envelope_from"`
	Recipients   []string `json:"recipients"` // the envelope: to, cc and bcc, each once
	Subject      string   `json:"subject"`
	// Headers are the header fields as they would be sent (encoded,
	// unfolded). Date is the preview's time; the send uses its own.
	Headers []string `json:"headers"`
	// MessageID is the id the send will use when MessageIDStable, that is
	// when the call has an idempotency key; otherwise the send draws a new
	// random one.
	MessageID       string `json:"message_id"`
	MessageIDStable bool   `json:"message_id_stable"`
	SizeBytes       int    `json:"size_bytes"`
	TextBytes       int    `json:"text_bytes"`
	HTMLBytes       int    `json:"html_bytes"`
}

// checkConfig connects, encrypts and signs in as a send would, then quits.
func checkConfig(ctx context.Context, conn connector.Connection) error {
	s, err := parseConfig(conn)
	if err != nil {
		return err
	}
	c, err := dial(ctx, connector.EgressFromContext(ctx), s)
	if err != nil {
		return err
	}
	c.quit()
	return nil
}

// prepare checks the input and the connection, without the network.
func prepare(req connector.Request[SendEmailInput]) (*settings, *message, error) {
	s, err := parseConfig(req.Connection)
	if err != nil {
		return nil, nil, err
	}
	m, err := newMessage(req.Input, s.from)
	if err != nil {
		return nil, nil, err
	}
	return s, m, nil
}

func previewSend(_ context.Context, req connector.Request[SendEmailInput]) (any, error) {
	s, m, err := prepare(req)
	if err != nil {
		return nil, err
	}
	id, stable := newMessageID(s.from, req.WorkspaceID, req.IdempotencyKey)
	raw, hs := m.render(time.Now(), id)
	p := &SendEmailPreview{
		Server: s.addr(), TLS: string(s.mode), Username: s.username,
		EnvelopeFrom: s.from.Address, Recipients: addresses(m.recipients()), Subject: m.subject,
		MessageID: id, MessageIDStable: stable,
		SizeBytes: len(raw), TextBytes: len(m.text), HTMLBytes: len(m.html),
	}
	for _, h := range hs {
		p.Headers = append(p.Headers, h.String())
	}
	return p, nil
}

func executeSend(ctx context.Context, req connector.Request[SendEmailInput]) (SendEmailOutput, error) {
	s, m, err := prepare(req)
	if err != nil {
		return SendEmailOutput{}, err
	}
	id, _ := newMessageID(s.from, req.WorkspaceID, req.IdempotencyKey)
	raw, _ := m.render(time.Now(), id)
	rcpts := m.recipients()
	envelopeRcpts := make([]string, len(rcpts))
	for i, a := range rcpts {
		envelopeRcpts[i] = envelope(a)
	}

	guard := req.Egress
	if guard == nil {
		guard = connector.EgressFromContext(ctx)
	}
	c, err := dial(ctx, guard, s)
	if err != nil {
		return SendEmailOutput{}, err
	}
	defer c.quit()
	response, err := c.send(ctx, envelope(s.from), envelopeRcpts, raw)
	if err != nil {
		return SendEmailOutput{}, err
	}
	return SendEmailOutput{MessageID: id, Accepted: addresses(rcpts), Response: response}, nil
}

func addresses(list []*mail.Address) []string {
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out
}
