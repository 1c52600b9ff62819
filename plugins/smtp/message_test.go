package smtp

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relayhq/relay/sdk/connector"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var goldenDate = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("", 2*3600))

func mustMessage(t testing.TB, in SendEmailInput) *message {
	t.Helper()
	from, err := parseAddress("Relay Bot <bot@relay.example>")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMessage(in, from)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRenderGolden pins the wire format. Run with -update to rewrite.
func TestRenderGolden(t *testing.T) {
	long := strings.Repeat("Lorem ipsum dolor sit amet, ", 8)
	cases := map[string]SendEmailInput{
		"text": {
			To: []string{"Ann Example <ann@example.com>"}, Subject: "Your report",
			Text: "Hello Ann,\n\nyour report is ready: 100% done = good.\n.\nA dot line above. Trailing space here \nBye.",
		},
		"html": {
			To: []string{"ann@example.com"}, Cc: []string{"Zoë Ünicode <zoe@example.org>"}, ReplyTo: "replies@relay.example",
			Subject: "Grüße aus Köln — ✓", HTML: "<p>Hallo <b>Zoë</b></p>",
		},
		"alternative": {
			To:      []string{"a@example.com", "\"Smith, John\" <john@example.com>", "c@example.com", "d@example.com", "e@example.com"},
			Bcc:     []string{"hidden@example.net"},
			Subject: long, Text: "plain " + long, HTML: "<p>" + long + "</p>",
		},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			m := mustMessage(t, in)
			raw, _ := m.render(goldenDate, "<0123456789abcdef0123456789abcdef@relay.example>")
			if _, params, err := mime.ParseMediaType(mustRead(t, raw).Header.Get("Content-Type")); err == nil && params["boundary"] != "" {
				raw = bytes.ReplaceAll(raw, []byte(params["boundary"]), []byte("BOUNDARY"))
			}
			path := filepath.Join("testdata", name+".eml")
			if *update {
				if err := os.WriteFile(path, raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, want) {
				t.Errorf("%s differs from the golden file (run with -update to accept):\n%s", name, raw)
			}
		})
	}
}

func mustRead(t testing.TB, raw []byte) *mail.Message {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return m
}

func TestParseConfig(t *testing.T) {
	conn := func(config map[string]any, secrets map[string]string) connector.Connection {
		raw, _ := json.Marshal(config)
		return connector.Connection{Config: raw, Secrets: secrets}
	}
	base := func(kv ...any) map[string]any {
		m := map[string]any{"host": "smtp.example.com", "from": "bot@example.com"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	ok := []struct {
		config         map[string]any
		host, mode     string
		port           int
		wantCustomRoot bool
	}{
		{base(), "smtp.example.com", "starttls", 587, false},
		{base("tls", "implicit"), "smtp.example.com", "implicit", 465, false},
		{base("tls", "IMPLICIT", "port", 2465), "smtp.example.com", "implicit", 2465, false},
		{base("tls", "none", "host", "127.0.0.1"), "127.0.0.1", "none", 25, false},
		{base("tls", "none", "host", "[::1]"), "::1", "none", 25, false},
		{base("tls", "none", "host", "localhost"), "localhost", "none", 25, false}, // resolved when dialling
		{base("host", "SMTP.Example.COM."), "smtp.example.com", "starttls", 587, false},
	}
	for _, tc := range ok {
		s, err := parseConfig(conn(tc.config, nil))
		if err != nil {
			t.Errorf("%v: %v", tc.config, err)
			continue
		}
		if s.host != tc.host || string(s.mode) != tc.mode || s.port != tc.port {
			t.Errorf("%v: host %s mode %s port %d", tc.config, s.host, s.mode, s.port)
		}
	}

	bad := []struct {
		config  map[string]any
		secrets map[string]string
		pointer string
	}{
		{map[string]any{"from": "bot@example.com"}, nil, "/host"},
		{base("host", "smtp.example.com:587"), nil, "/host"},
		{base("host", "smtp.example.com\r\nMAIL FROM:<x>"), nil, "/host"},
		{base("host", "fe80::1%eth0"), nil, "/host"},
		{base("port", 70000), nil, "/port"},
		{base("tls", "ssl"), nil, "/tls"},
		{base("tls", "none", "host", "192.0.2.1"), nil, "/tls"},
		{base("tls", "none", "host", "::ffff:10.0.0.1"), nil, "/tls"},
		{base("from", "not an address"), nil, "/from"},
		{map[string]any{"host": "smtp.example.com"}, nil, "/from"},
		{base("ca_pem", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"), nil, "/ca_pem"},
		{base(), map[string]string{"password": "p"}, "/username"},
		{base("username", "a\x00b"), map[string]string{"password": "p"}, "/username"},
	}
	for _, tc := range bad {
		_, err := parseConfig(conn(tc.config, tc.secrets))
		e, isErr := err.(*connector.Error)
		if !isErr || e.Code != connector.CodeInvalidInput {
			t.Errorf("%v: error %v, want INVALID_INPUT", tc.config, err)
			continue
		}
		if !slices.ContainsFunc(e.Fields, func(f connector.FieldError) bool { return f.Pointer == tc.pointer }) {
			t.Errorf("%v: fields %v, want %s", tc.config, e.Fields, tc.pointer)
		}
	}
}

// TestInputSchemaMatchesTheInputType keeps the hand-written schema and the
// Go type it decodes into in step.
func TestInputSchemaMatchesTheInputType(t *testing.T) {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(sendEmailInputSchema, &s); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for k := range s.Properties {
		inSchema = append(inSchema, k)
	}
	var inType []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[SendEmailInput]()) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		inType = append(inType, name)
	}
	slices.Sort(inSchema)
	slices.Sort(inType)
	if !slices.Equal(inSchema, inType) {
		t.Errorf("schema properties %v, type fields %v", inSchema, inType)
	}
}

func TestRecipientsAreDeduplicated(t *testing.T) {
	m := mustMessage(t, SendEmailInput{
		To: []string{"a@example.com", "Ann <A@EXAMPLE.COM>"}, Cc: []string{"a@Example.com", "b@example.com"},
		Bcc: []string{"b@example.com", "c@example.com"}, Subject: "s", Text: "t",
	})
	var got []string
	for _, a := range m.recipients() {
		got = append(got, a.Address)
	}
	// Domains compare without case; local parts are the server's business.
	want := []string{"a@example.com", "A@example.com", "b@example.com", "c@example.com"}
	if !slices.Equal(got, want) {
		t.Errorf("recipients %v, want %v", got, want)
	}
}

func TestEnvelopeQuotesTheLocalPart(t *testing.T) {
	a, err := parseAddress(`"john doe"@example.com`)
	if err != nil {
		t.Fatal(err)
	}
	if got := envelope(a); got != `<"john doe"@example.com>` {
		t.Errorf("envelope %s", got)
	}
}

// FuzzParseAddress: whatever comes in, an accepted address serializes to
// one printable ASCII line that parses back to the same address.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"ann@example.com", "Ann <ann@example.com>", `"Smith, John" <john@example.com>`,
		"Zoë <zoe@example.org>", "=?utf-8?q?x=0D=0ABcc:_evil@x?= <a@b.c>", "x\r\nBcc: evil@x",
		`"john doe"@example.com`, "a@[192.0.2.1]", "(comment) a@b.c", "a@@b", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAddress(s)
		if err != nil {
			return
		}
		for _, out := range []string{a.String(), envelope(a)} {
			if !isPrintableASCII(out) {
				t.Fatalf("%q serializes to %q", s, out)
			}
		}
		back, err := mail.ParseAddress(a.String())
		if err != nil {
			t.Fatalf("%q serializes to %q, which does not parse: %v", s, a.String(), err)
		}
		if back.Address != a.Address {
			t.Fatalf("%q: address %q comes back as %q", s, a.Address, back.Address)
		}
	})
}

// FuzzRenderMessage: an accepted input renders to a 7-bit message whose
// header lines fit and are exactly the ones expected (nothing injected),
// whose subject decodes back, and whose bodies decode back.
func FuzzRenderMessage(f *testing.F) {
	f.Add("Hi", "Ann <ann@example.com>", "Hello\nthere", "")
	f.Add("Grüße — ✓", "Zoë <zoe@example.org>", "", "<p>Hallo</p>")
	f.Add("x\r\nBcc: evil@x", "a@b.c", "t", "h")
	f.Add(strings.Repeat("word ", 180), "a@b.c", ".\r\n.\n..", "=3D")
	f.Add(strings.Repeat("x", 900), "a@b.c", "\r\r\n\n", strings.Repeat("é", 100))
	f.Fuzz(func(t *testing.T, subject, to, text, html string) {
		if !utf8.ValidString(subject + to + text + html) {
			return // JSON input is UTF-8
		}
		m, err := newMessage(SendEmailInput{To: []string{to}, Subject: subject, Text: text, HTML: html}, &mail.Address{Name: "Bot", Address: "bot@relay.example"})
		if err != nil {
			return
		}
		raw, _ := m.render(goldenDate, "<id@relay.example>")
		if !isSevenBit(raw) {
			t.Fatalf("not 7-bit:\n%q", raw)
		}
		head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		var names []string
		for _, line := range strings.Split(string(head), "\r\n") {
			if len(line) > 998 {
				t.Fatalf("a header line of %d characters", len(line))
			}
			if strings.TrimSpace(line) == "" {
				t.Fatalf("a header line of only white space:\n%q", head)
			}
			if line[0] != ' ' && line[0] != '\t' {
				name, _, _ := strings.Cut(line, ":")
				names = append(names, name)
			}
		}
		want := []string{"Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"}
		if text == "" || html == "" {
			want = append(want, "Content-Transfer-Encoding")
		}
		if !slices.Equal(names, want) {
			t.Fatalf("headers %v, want %v", names, want)
		}

		msg := mustRead(t, raw)
		// Unfold as RFC 5322 says (drop the CRLF, keep the space), then decode.
		unfolded := strings.ReplaceAll(headerValue(string(head), "Subject"), "\r\n", "")
		if !strings.Contains(subject, "=?") {
			got, err := new(mime.WordDecoder).DecodeHeader(unfolded)
			if err != nil || got != subject {
				t.Fatalf("subject %q comes back as %q (%v)", subject, got, err)
			}
		}
		if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != m.to[0].Address {
			t.Fatalf("To %q: %v %v", msg.Header.Get("To"), to, err)
		}

		bodies := map[string]string{}
		mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if mediaType == "multipart/alternative" {
			mr := multipart.NewReader(msg.Body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(p)
				ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
				bodies[ct] = string(b)
			}
		} else {
			b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
			if err != nil {
				t.Fatal(err)
			}
			// The message's last line break may be the rendering's own.
			want := map[string]string{"text/plain": text, "text/html": html}[mediaType]
			if !strings.HasSuffix(want, "\n") && !strings.HasSuffix(want, "\r") {
				b = bytes.TrimSuffix(b, []byte("\r\n"))
			}
			bodies[mediaType] = string(b)
		}
		// Every line break (CRLF, LF or a lone CR) arrives as CRLF.
		crlf := func(s string) string {
			s = strings.ReplaceAll(s, "\r\n", "\n")
			s = strings.ReplaceAll(s, "\r", "\n")
			return strings.ReplaceAll(s, "\n", "\r\n")
		}
		if text != "" && bodies["text/plain"] != crlf(text) {
			t.Fatalf("text %q comes back as %q", text, bodies["text/plain"])
		}
		if html != "" && bodies["text/html"] != crlf(html) {
			t.Fatalf("html %q comes back as %q", html, bodies["text/html"])
		}
	})
}

// headerValue is the raw, folded value of the first header called name.
func headerValue(head, name string) string {
	lines := strings.Split(head, "\r\n")
	for i, line := range lines {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			for _, next := range lines[i+1:] {
				if next == "" || (next[0] != ' ' && next[0] != '\t') {
					break
				}
				v += "\r\n" + next
			}
			return strings.TrimPrefix(v, " ")
		}
	}
	return ""
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' && s[i] != '\t' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isSevenBit(b []byte) bool {
	for _, c := range b {
		if c > 127 || c == 0 {
			return false
		}
	}
	return true
}
