package smtp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"

	"github.com/relayhq/relay/sdk/connector"
)

// Config is a connection to one SMTP server, normally a mail provider's
// submission service or the organisation's relay.
type Config struct {
	Host     string `json:"host" jsonschema:"The SMTP server's host name or IP address, without port."`
	Port     int    `json:"port,omitempty" jsonschema:"The TCP port. Default by tls mode: 587 for starttls, 465 for implicit, 25 for none."`
	Username string `json:"username,omitempty" jsonschema:"The user to sign in as (AUTH PLAIN or LOGIN, as the server offers). Empty: no sign-in."`
	Password string `json:"password,omitempty" relay:"secret" jsonschema:"The password of username."`
	From     string `json:"from" jsonschema:"The sender address, optionally with a display name: Relay <noreply@example.com>."`
	TLS      string `json:"tls,omitempty" jsonschema:"How the connection is encrypted: starttls (default; upgrade after connecting), implicit (TLS from the first byte, as on port 465) or none (only to a server on a loopback address)."`
	CAPEM    string `json:"ca_pem,omitempty" jsonschema:"PEM of one or more CA certificates to trust in addition to the system's, for a relay whose certificate a private CA signed."`
}

// tlsMode is how a connection is encrypted.
type tlsMode string

const (
	tlsStartTLS tlsMode = "starttls"
	tlsImplicit tlsMode = "implicit"
	tlsNone     tlsMode = "none"
)

var defaultPort = map[tlsMode]int{tlsStartTLS: 587, tlsImplicit: 465, tlsNone: 25}

// maxCAPEM bounds ca_pem; a handful of certificates fit easily.
const maxCAPEM = 64 << 10

// settings is a checked Config, ready to dial.
type settings struct {
	host     string // a lower-case name or an IP address, without brackets
	port     int
	mode     tlsMode
	username string
	password string
	from     *mail.Address
	roots    *x509.CertPool // nil: the system's roots
}

// addr is host:port for dialling.
func (s *settings) addr() string { return joinHostPort(s.host, s.port) }

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func (s *settings) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: s.host, RootCAs: s.roots, MinVersion: tls.VersionTLS12}
}

// parseConfig decodes and checks a connection without touching the network.
// Every problem is reported at once, by JSON Pointer into the config. A
// host that is a name is checked against tls "none" only when dialling,
// since that needs its addresses.
func parseConfig(conn connector.Connection) (*settings, error) {
	var c Config
	if err := conn.Decode(&c); err != nil {
		return nil, err
	}
	var fields []connector.FieldError
	bad := func(pointer, format string, args ...any) {
		fields = append(fields, connector.FieldError{Pointer: pointer, Message: fmt.Sprintf(format, args...)})
	}
	s := &settings{username: c.Username, password: c.Password}

	switch mode := tlsMode(strings.ToLower(strings.TrimSpace(c.TLS))); mode {
	case "":
		s.mode = tlsStartTLS
	case tlsStartTLS, tlsImplicit, tlsNone:
		s.mode = mode
	default:
		bad("/tls", `must be "starttls", "implicit" or "none", not %q`, c.TLS)
		s.mode = tlsStartTLS
	}

	host, err := normalizeHost(c.Host)
	if err != nil {
		bad("/host", "%v", err)
	}
	s.host = host
	if s.mode == tlsNone && host != "" {
		if a, err := netip.ParseAddr(host); err == nil && !a.Unmap().IsLoopback() {
			bad("/tls", `"none" sends mail and credentials in clear; it is allowed only to a loopback address, and %s is not one`, host)
		}
	}

	switch {
	case c.Port == 0:
		s.port = defaultPort[s.mode]
	case c.Port < 1 || c.Port > 65535:
		bad("/port", "must be between 1 and 65535")
	default:
		s.port = c.Port
	}

	if c.From == "" {
		bad("/from", "is required")
	} else if s.from, err = parseAddress(c.From); err != nil {
		bad("/from", "%v", err)
	}

	// SASL PLAIN separates the fields with NUL.
	if strings.ContainsRune(c.Username, 0) {
		bad("/username", "must not contain NUL")
	}
	if strings.ContainsRune(c.Password, 0) {
		bad("/password", "must not contain NUL")
	}
	if c.Username == "" && c.Password != "" {
		bad("/username", "is required when a password is set")
	}

	if c.CAPEM != "" {
		if len(c.CAPEM) > maxCAPEM {
			bad("/ca_pem", "is %d bytes, over the %d-byte limit", len(c.CAPEM), maxCAPEM)
		} else if s.roots, err = rootsWith(c.CAPEM); err != nil {
			bad("/ca_pem", "%v", err)
		}
	}

	if len(fields) > 0 {
		return nil, &connector.Error{Code: connector.CodeInvalidInput, Message: "the smtp connection's config is invalid", Fields: fields}
	}
	return s, nil
}

// normalizeHost accepts a host name or an IP address (IPv6 with or without
// brackets) and refuses anything that could smuggle a port, a path or a
// command.
func normalizeHost(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", fmt.Errorf("is required")
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("%q: an address with a zone is not supported", h)
		}
		return a.Unmap().String(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if len(name) > 253 {
		return "", fmt.Errorf("is longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a host name or IP address (give the port in port)", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", fmt.Errorf("%q is not a host name or IP address (give the port in port)", h)
			}
		}
	}
	return name, nil
}

// rootsWith is the system's trusted roots plus the CA certificates in pem.
func rootsWith(pem string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM([]byte(pem)) {
		return nil, fmt.Errorf("holds no PEM CERTIFICATE block that parses")
	}
	return pool, nil
}
