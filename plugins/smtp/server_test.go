package smtp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// The test's SMTP server: a real go-smtp server on 127.0.0.1:0 that
// requires AUTH with one username and password and records what it gets.

const (
	testUser     = "relay-user"
	testPassword = "s3cret-Pa55word"
)

// received is one message as the server got it.
type received struct {
	user  string // who signed in
	from  string
	rcpts []string
	data  []byte
}

type testServer struct {
	addr  *net.TCPAddr
	conns atomic.Int64 // TCP connections accepted

	mu       sync.Mutex
	msgs     []received
	authOK   int // successful sign-ins
	authSeen int // sign-in attempts
	// Failures to inject.
	rcptErr, dataErr error
	// mechs are the AUTH mechanisms offered; PLAIN when empty.
	mechs []string
}

func (s *testServer) port() int { return s.addr.Port }

func (s *testServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *testServer) fail(rcpt, data error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptErr, s.dataErr = rcpt, data
}

func (s *testServer) authAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authSeen
}

// startServer starts an SMTP server in one of the connector's tls modes:
// "starttls" offers STARTTLS, "implicit" speaks TLS from the first byte,
// "none" has no TLS and allows AUTH in clear (it listens on loopback).
func startServer(t *testing.T, mode string) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &session{ts: ts}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().(*net.TCPAddr)
	l = &countingListener{Listener: l, n: &ts.conns}
	cfg := &tls.Config{Certificates: []tls.Certificate{testCert(t).pair}, MinVersion: tls.VersionTLS12}
	switch mode {
	case "starttls":
		srv.TLSConfig = cfg
	case "implicit":
		srv.TLSConfig = cfg
		l = tls.NewListener(l, cfg)
	case "none":
		srv.AllowInsecureAuth = true
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // Close misses a listener that Serve has not registered yet
		<-done
	})
	return ts
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// errAuthRequired is RFC 4954's reply to MAIL without a sign-in
// (go-smtp's own ErrAuthRequired says 502).
var errAuthRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

type session struct {
	ts    *testServer
	user  string
	from  string
	rcpts []string
}

var _ gosmtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if len(s.ts.mechs) == 0 {
		return []string{sasl.Plain}
	}
	return s.ts.mechs
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		s.ts.mu.Lock()
		defer s.ts.mu.Unlock()
		s.ts.authSeen++
		if username != testUser || password != testPassword {
			return gosmtp.ErrAuthFailed
		}
		s.ts.authOK++
		s.user = username
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.user == "" {
		return errAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if s.ts.rcptErr != nil {
		return s.ts.rcptErr
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if s.ts.dataErr != nil {
		return s.ts.dataErr
	}
	s.ts.msgs = append(s.ts.msgs, received{user: s.user, from: s.from, rcpts: s.rcpts, data: data})
	return nil
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check    func(user, pass string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if response != nil { // an initial response is the username
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.step++
		l.username = string(response)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.username, string(response))
}

// testCertificate is a self-signed certificate for 127.0.0.1 and localhost.
type testCertificate struct {
	pair tls.Certificate
	pem  string // the certificate, to trust it through ca_pem
}

var (
	certOnce sync.Once
	certVal  testCertificate
	certErr  error
)

func testCert(t *testing.T) testCertificate {
	t.Helper()
	certOnce.Do(func() { certVal, certErr = newTestCert() })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certVal
}

func newTestCert() (testCertificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testCertificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "relay smtp test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return testCertificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return testCertificate{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return testCertificate{}, errors.Join(errors.New("test certificate"), err)
	}
	return testCertificate{pair: pair, pem: string(certPEM)}, nil
}

func (s *testServer) signIns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authOK
}

// freePort returns a loopback port that nothing listens on (it was free a
// moment ago).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
