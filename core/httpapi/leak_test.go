package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// rawRequest sends raw on a fresh connection and reads one response.
func (ts *testServer) rawRequest(raw string) (*http.Response, []byte) {
	ts.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		ts.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		ts.t.Fatal(err)
	}
	// The end of what the client sends, as `printf … | nc` makes it: a
	// header section left unfinished is then refused, not waited on.
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		ts.t.Fatalf("reading the response to %q: %v", raw, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp, body
}

// A request the HTTP layer cannot parse is refused with a fixed text:
// fasthttp's own error quotes the request's bytes, key and all, and
// whoever logs error bodies (a proxy, a client) would store the key.
func TestMalformedRequestsEchoNothing(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	key := keys[core.RoleAdmin]
	auth := "Authorization: Bearer " + key + "\r\n"
	tests := []struct {
		name string
		raw  string
		code string
	}{
		{"header line without a colon", "GET /v1/workspace HTTP/1.1\r\nHost: relay\r\n" + auth + "Bad Header\r\n\r\n", core.EInvalid},
		{"negative Content-Length", "POST /v1/keys HTTP/1.1\r\nHost: relay\r\n" + auth + "Content-Type: application/json\r\nContent-Length: -1\r\n\r\n{}", core.EInvalid},
		{"Content-Length not a number", "POST /v1/keys HTTP/1.1\r\nHost: relay\r\n" + auth + "Content-Length: 1x\r\n\r\n{}", core.EInvalid},
		{"header line without a colon, unfinished", "GET /v1/workspace HTTP/1.1\r\nHost: relay\r\n" + auth + "Bad Header\r\n", core.EInvalid},
		{"header name with a space", "GET /v1/workspace HTTP/1.1\r\nHost: relay\r\n" + auth + "Bad Header: x\r\n\r\n", core.EInvalid},
		{"request line without spaces", "GET/v1/workspace?api_key=" + key + "\r\nHost: relay\r\n" + auth + "\r\n", core.EInvalid},
		// The access log names the path (never the query) of every request
		// that parsed, so this one checks only the response.
		{"no such route, key in the path and the query", "GET /v1/nothing/" + key + "?api_key=" + key + " HTTP/1.1\r\nHost: relay\r\n\r\n", ""},
	}
	for i, tt := range tests {
		if i == len(tests)-1 {
			if logs := ts.logs.String(); strings.Contains(logs, key[len(key)-20:]) {
				t.Errorf("the log holds the key:\n%s", logs)
			}
		}
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.with(t).rawRequest(tt.raw)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d, want a 4xx: %s", resp.StatusCode, body)
			}
			p := (&response{Status: resp.StatusCode, Header: resp.Header, Body: body}).problem(t)
			if tt.code != "" && p.Code != tt.code {
				t.Errorf("code %q, want %q", p.Code, tt.code)
			}
			secret := key[len(key)-20:]
			for name, values := range resp.Header {
				if strings.Contains(strings.Join(values, " "), secret) {
					t.Errorf("header %s echoes the key: %q", name, values)
				}
			}
			if strings.Contains(string(body), secret) {
				t.Errorf("the response echoes the key: %s", body)
			}
		})
	}
}
