package smtp

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/relayhq/relay/sdk/connector"
)

// Limits on one message. A header line may hold 998 characters (RFC 5322
// §2.1.1); the caps below keep every folded line of ours within that.
const (
	maxRecipients  = 100 // to, cc and bcc together; what common providers accept
	maxAddressLen  = 512
	maxSubjectLen  = 900 // characters
	foldLineLength = 78
)

// SendEmailInput is the input of smtp.send_email.
type SendEmailInput struct {
	To      []string `json:"to"`
	Cc      []string `json:"cc,omitempty"`
	Bcc     []string `json:"bcc,omitempty"`
	ReplyTo string   `json:"reply_to,omitempty"`
	Subject string   `json:"subject"`
	Text    string   `json:"text,omitempty"`
	HTML    string   `json:"html,omitempty"`
}

// message is a checked SendEmailInput with its sender.
type message struct {
	from, replyTo *mail.Address
	to, cc, bcc   []*mail.Address
	subject       string
	text, html    string
}

// newMessage checks the input and reports every problem at once, each by
// JSON Pointer into the input.
func newMessage(in SendEmailInput, from *mail.Address) (*message, error) {
	m := &message{from: from, subject: in.Subject, text: in.Text, html: in.HTML}
	var fields []connector.FieldError
	bad := func(pointer, format string, args ...any) {
		fields = append(fields, connector.FieldError{Pointer: pointer, Message: fmt.Sprintf(format, args...)})
	}
	list := func(name string, in []string) []*mail.Address {
		var out []*mail.Address
		for i, s := range in {
			a, err := parseAddress(s)
			if err != nil {
				bad("/"+name+"/"+strconv.Itoa(i), "%v", err)
				continue
			}
			out = append(out, a)
		}
		return out
	}
	if len(in.To) == 0 {
		bad("/to", "needs at least one recipient")
	}
	m.to, m.cc, m.bcc = list("to", in.To), list("cc", in.Cc), list("bcc", in.Bcc)
	if n := len(in.To) + len(in.Cc) + len(in.Bcc); n > maxRecipients {
		bad("", "%d recipients in to, cc and bcc; at most %d", n, maxRecipients)
	}
	if in.ReplyTo != "" {
		a, err := parseAddress(in.ReplyTo)
		if err != nil {
			bad("/reply_to", "%v", err)
		}
		m.replyTo = a
	}
	switch {
	case strings.TrimSpace(in.Subject) == "":
		bad("/subject", "is required")
	case strings.IndexFunc(in.Subject, isControl) >= 0:
		bad("/subject", "must not contain line breaks or other control characters")
	case utf8.RuneCountInString(in.Subject) > maxSubjectLen:
		bad("/subject", "is longer than %d characters", maxSubjectLen)
	}
	if in.Text == "" && in.HTML == "" {
		bad("", "give text, html or both")
	}
	if len(fields) > 0 {
		return nil, &connector.Error{Code: connector.CodeInvalidInput, Message: "the email is invalid", Fields: fields}
	}
	return m, nil
}

// parseAddress accepts one address as RFC 5322 writes it, with or without
// a display name ("Ann <ann@example.com>" or "ann@example.com"). The
// display name may be any text; the address itself must be ASCII, since a
// server that lacks SMTPUTF8 could not deliver it.
func parseAddress(s string) (*mail.Address, error) {
	if len(s) > maxAddressLen {
		return nil, fmt.Errorf("is longer than %d bytes", maxAddressLen)
	}
	if strings.IndexFunc(s, isControl) >= 0 {
		return nil, errors.New("must not contain line breaks or other control characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address: %s", s, strings.TrimPrefix(err.Error(), "mail: "))
	}
	// An encoded-word in the name decodes to anything; keep it printable.
	if strings.IndexFunc(a.Name, isControl) >= 0 {
		return nil, errors.New("the display name must not contain line breaks or other control characters")
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 || strings.IndexFunc(a.Address, isControl) >= 0 {
		return nil, fmt.Errorf("%q is not an email address", s)
	}
	for _, r := range a.Address {
		if r >= utf8.RuneSelf {
			return nil, fmt.Errorf("%q: internationalized (non-ASCII) addresses are not supported; the display name may be any text", s)
		}
	}
	a.Address = a.Address[:at] + "@" + strings.ToLower(a.Address[at+1:])
	return a, nil
}

// isControl is true for the characters no header may carry: C0 and C1
// controls (CR and LF above all), DEL, and the Unicode line separators.
// A tab is allowed.
func isControl(r rune) bool {
	return r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029')
}

// envelope is an address as MAIL FROM and RCPT TO carry it: <local@domain>,
// the local part quoted when it needs to be.
func envelope(a *mail.Address) string {
	return (&mail.Address{Address: a.Address}).String()
}

// recipients is every envelope recipient (to, cc, then bcc), each once.
func (m *message) recipients() []*mail.Address {
	seen := map[string]bool{}
	var out []*mail.Address
	for _, list := range [][]*mail.Address{m.to, m.cc, m.bcc} {
		for _, a := range list {
			if !seen[a.Address] {
				seen[a.Address] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// header is one header field, unfolded.
type header struct{ name, value string }

func (h header) String() string { return h.name + ": " + h.value }

// render builds the RFC 5322 message: every header ASCII (RFC 2047
// encoded-words for other text), the bodies UTF-8 in quoted-printable, and
// both bodies as multipart/alternative when both are given. Bcc is not a
// header: those recipients are only in the envelope.
func (m *message) render(date time.Time, messageID string) ([]byte, []header) {
	var body bytes.Buffer
	var contentType string
	single := true
	switch {
	case m.text != "" && m.html != "":
		mw := multipart.NewWriter(&body)
		writePart(mw, "text/plain", m.text)
		writePart(mw, "text/html", m.html)
		mw.Close()
		contentType = mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()})
		single = false
	case m.html != "":
		writeQuotedPrintable(&body, m.html)
		contentType = "text/html; charset=utf-8"
	default:
		writeQuotedPrintable(&body, m.text)
		contentType = "text/plain; charset=utf-8"
	}
	if !bytes.HasSuffix(body.Bytes(), []byte("\r\n")) {
		body.WriteString("\r\n") // every line of a message ends in CRLF
	}

	hs := []header{
		{"Date", date.Format(time.RFC1123Z)},
		{"From", m.from.String()},
		{"To", addressList(m.to)},
	}
	if len(m.cc) > 0 {
		hs = append(hs, header{"Cc", addressList(m.cc)})
	}
	if m.replyTo != nil {
		hs = append(hs, header{"Reply-To", m.replyTo.String()})
	}
	hs = append(hs,
		header{"Subject", mime.QEncoding.Encode("utf-8", m.subject)},
		header{"Message-ID", messageID},
		header{"MIME-Version", "1.0"},
		header{"Content-Type", contentType},
	)
	if single {
		hs = append(hs, header{"Content-Transfer-Encoding", "quoted-printable"})
	}

	var out bytes.Buffer
	for _, h := range hs {
		writeFolded(&out, h)
	}
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), hs
}

func addressList(list []*mail.Address) string {
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

func writePart(mw *multipart.Writer, mediaType, content string) {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", mediaType+"; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	w, _ := mw.CreatePart(h) // writes to a bytes.Buffer: cannot fail
	writeQuotedPrintable(w, content)
}

func writeQuotedPrintable(w io.Writer, content string) {
	qp := quotedprintable.NewWriter(w)
	qp.Write([]byte(content)) // into a bytes.Buffer: cannot fail
	qp.Close()
}

// writeFolded writes "Name: value\r\n", folding at the value's spaces so
// that lines stay within 78 characters where the words allow. Folding puts
// CRLF before an existing space, so unfolding gives back the value exactly;
// it never leaves a line of only white space.
func writeFolded(out *bytes.Buffer, h header) {
	out.WriteString(h.name)
	out.WriteByte(':')
	lineLen := len(h.name) + 1
	for i, word := range strings.Split(h.value, " ") {
		if i > 0 && strings.TrimSpace(word) != "" && lineLen+1+len(word) > foldLineLength && lineLen > len(h.name)+1 {
			out.WriteString("\r\n")
			lineLen = 0
		}
		out.WriteByte(' ')
		out.WriteString(word)
		lineLen += 1 + len(word)
	}
	out.WriteString("\r\n")
}

// newMessageID returns a Message-ID in the sender's domain. With an
// idempotency key it is derived from the workspace and the key, so that a
// retried send carries the same id and receivers can drop the duplicate;
// otherwise it is random.
func newMessageID(from *mail.Address, workspaceID, idempotencyKey string) (id string, stable bool) {
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	var left [16]byte
	if idempotencyKey != "" {
		sum := sha256.Sum256([]byte("relay smtp message-id\x00" + workspaceID + "\x00" + idempotencyKey))
		copy(left[:], sum[:])
		stable = true
	} else {
		rand.Read(left[:])
	}
	return "<" + hex.EncodeToString(left[:]) + "@" + domain + ">", stable
}
